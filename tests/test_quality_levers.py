"""Training and acting levers of the quality work: Gaussian-histogram targets, median decoding,
episode-start windows, action-balanced mixtures, bf16 training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gato.config import get_preset
from gato.data.episode import Episode, TaskSpec
from gato.data.sampling import ControlSource
from gato.tokenization.vocab import Kind
from gato.training import precision
from gato.training.loss import gaussian_targets, masked_loss
from gato.training.config import TrainConfig, mixture_weights
from gato.training.trainer import Trainer


def _one_continuous_target(tm, bin_index: int):
    lo, _ = tm.continuous_range()
    ids = torch.tensor([[tm.separator, lo + bin_index]])
    kinds = torch.tensor([[int(Kind.SEPARATOR), int(Kind.CONTINUOUS_ACTION)]], dtype=torch.uint8)
    return ids, kinds, torch.tensor([[False, True]])


def test_gaussian_targets_reward_nearby_bins_and_reduce_to_one_hot():
    tm = get_preset("gato-tiny").token_map
    lo, hi = tm.continuous_range()
    ids, kinds, mask = _one_continuous_target(tm, 500)

    def loss_when_predicting(b, sigma):
        logits = torch.full((1, tm.size), -10.0)
        logits[0, lo + b] = 10.0
        return float(masked_loss(logits, ids, kinds, mask, sigma=sigma, continuous=(lo, hi))[0])

    # One-hot cross-entropy cannot tell a neighbour from a far bin; the histogram can.
    assert loss_when_predicting(501, 0.0) == pytest.approx(loss_when_predicting(900, 0.0))
    assert loss_when_predicting(501, 2.0) < loss_when_predicting(510, 2.0) < loss_when_predicting(900, 2.0)
    # A tiny sigma is the one-hot target.
    logits = torch.randn(1, tm.size)
    a = masked_loss(logits, ids, kinds, mask, sigma=1e-3, continuous=(lo, hi))[0]
    b = masked_loss(logits, ids, kinds, mask)[0]
    assert float(a) == pytest.approx(float(b), rel=1e-5)
    p = gaussian_targets(torch.tensor([0, 1023]), 1024, 2.0)
    assert torch.allclose(p.sum(-1), torch.ones(2)) and p[0].argmax() == 0 and p[1].argmax() == 1023


def test_smoothed_loss_of_mixed_targets_matches_each_row_computed_alone():
    tm = get_preset("gato-tiny").token_map
    lo, hi = tm.continuous_range()
    torch.manual_seed(0)
    # a text target, two continuous ones, another text target (position 0 is never a target)
    ids = torch.tensor([[tm.separator, 17, lo + 3, lo + 1000, 42]])
    kinds = torch.tensor([[int(Kind.SEPARATOR), int(Kind.TEXT), int(Kind.CONTINUOUS_ACTION),
                           int(Kind.CONTINUOUS_ACTION), int(Kind.TEXT)]], dtype=torch.uint8)
    mask = torch.tensor([[False, True, True, True, True]])
    logits = torch.randn(4, tm.size, requires_grad=True)
    loss, _ = masked_loss(logits, ids, kinds, mask, sigma=2.0, continuous=(lo, hi))
    loss.backward()
    ref_logits = logits.detach().clone().requires_grad_()
    rows = []
    for i, t in enumerate(ids[0, 1:].tolist()):
        logp = torch.log_softmax(ref_logits[i], -1)
        if lo <= t < hi:
            rows.append(-(gaussian_targets(torch.tensor([t - lo]), hi - lo, 2.0)[0] * logp[lo:hi]).sum())
        else:
            rows.append(-logp[t])
    ref = torch.stack(rows).mean()
    ref.backward()
    assert float(loss) == pytest.approx(float(ref), rel=1e-6)
    assert torch.allclose(logits.grad, ref_logits.grad, atol=1e-7)


def test_median_decoding_picks_the_middle_of_the_predicted_mass():
    from gato.agent import GatoAgent
    from gymnasium import spaces

    model_cfg = get_preset("gato-tiny", context=64, num_layers=1)
    from gato.model import Gato
    spec = TaskSpec("t/c", spaces.Box(-1, 1, (2,), np.float32), spaces.Box(-1, 1, (1,), np.float32))
    agent = GatoAgent(Gato(model_cfg), spec, 1, decode="median")
    z = torch.full((1, 1024), -30.0)
    z[0, [100, 200, 300]] = torch.tensor([0.0, 0.1, 0.0]).exp().log()  # three near-equal modes
    z[0, 100] += 0.3  # the argmax is the outer one
    tok, _ = agent._sample(z, 0, 0.0, median=True)
    assert int(tok) == 200 and int(agent._sample(z, 0, 0.0)[0]) == 100
    with pytest.raises(ValueError, match="decode"):
        GatoAgent(Gato(model_cfg), spec, 1, decode="mode")


def _source(start_prob):
    from gymnasium import spaces
    tm = get_preset("gato-tiny").token_map
    spec = TaskSpec("t/c", spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(2))
    eps = [Episode([np.zeros(3, np.float32)] * 400, [0] * 400) for _ in range(3)]
    return ControlSource(spec, eps, tm, prompt_prob=0.0, start_prob=start_prob), tm


def test_start_prob_opens_windows_at_the_episode_start():
    rng = np.random.default_rng(0)
    src, tm = _source(1.0)
    assert all(src.sample(rng, 64).kinds[0] == Kind.BOS for _ in range(20))
    src, _ = _source(0.0)
    assert sum(src.sample(rng, 64).kinds[0] == Kind.BOS for _ in range(50)) < 5  # 1 in ~25 uniformly
    assert src.tokens_per_action() == 5.0  # 3 values, the separator, 1 action


def test_task_balance_moves_rows_towards_action_poor_tasks():
    assert mixture_weights(2, 1, 0.2, [100.0, 4.0], 0.0) == pytest.approx([0.4, 0.4, 0.2])
    w = mixture_weights(2, 1, 0.2, [100.0, 4.0], 1.0)
    assert w[0] / w[1] == pytest.approx(25.0) and sum(w) == pytest.approx(1.0)
    assert mixture_weights(2, 0, 0.2, [9.0, 1.0], 0.5) == pytest.approx([0.75, 0.25])
    with pytest.raises(ValueError, match="task_balance"):
        mixture_weights(2, 1, 0.2, [1.0, 1.0], 1.5)


def test_task_weights_give_a_lagging_task_more_rows(tmp_path):
    from gato.commands.data import collect
    from gato.tokenization.text import TextTokenizer
    from gato.training.config import build_mixture

    assert mixture_weights(2, 1, 0.2, [1.0, 1.0], 0.0, [3.0, 1.0]) == pytest.approx([0.6, 0.2, 0.2])
    collect(("control/cartpole", "control/acrobot"), episodes=1, test_episodes=0, out=tmp_path, progress=False)
    model_cfg, text = get_preset("gato-tiny", context=64), TextTokenizer.default()

    def share(weights):
        cfg = TrainConfig(data=str(tmp_path), task_weights=weights, min_return=0.0)
        mix = build_mixture(cfg, model_cfg, text, 64)
        return dict(zip([s.name for s in mix.sources], mix.weights))

    plain, up = share(()), share(("control/acrobot=4",))
    assert plain["control/acrobot"] == pytest.approx(plain["control/cartpole"])
    assert up["control/acrobot"] == pytest.approx(4 * up["control/cartpole"])
    with pytest.raises(ValueError, match="control/nosuch"):
        share(("control/nosuch=2",))
    for bad in ("control/acrobot", "control/acrobot=0", "control/acrobot=inf", "=2", "control/acrobot=x"):
        with pytest.raises(ValueError, match="TASK=FACTOR"):
            TrainConfig(task_weights=(bad,))


def test_precision_resolution_and_a_bf16_training_step():
    assert precision.resolve("fp32", "cpu") == "fp32"
    assert precision.resolve("auto", "cpu") == ("bf16" if precision.cpu_has_bf16() else "fp32")
    with pytest.raises(ValueError, match="precision"):
        precision.resolve("fp16", "cpu")
    cfg = TrainConfig(steps=3, batch_size=2, context=64, warmup=1, precision="bf16", target_sigma=2.0)
    t = Trainer(cfg, get_preset("gato-tiny", context=64, num_layers=1))
    assert t.precision == "bf16" and t.meta()["precision"] == "bf16"
    losses = [float(t.train_step(t.data.sample_batch(2, 64))[0]) for _ in range(3)]
    assert all(np.isfinite(losses))
    assert next(t.model.parameters()).dtype == torch.float32  # autocast lowers products, not weights


def test_executed_actions_are_the_history_and_labels_the_targets(tmp_path):
    """A DAgger or noisy step: the input holds what the environment ran, the loss the label;
    both survive a round trip through storage."""
    from gymnasium import spaces

    from gato.data.layout import EpisodeLayout
    from gato.data.sampling import collate
    from gato.data.storage import DatasetWriter, TaskDataset

    tm = get_preset("gato-tiny").token_map
    spec = TaskSpec("t/c", spaces.Box(-1, 1, (2,), np.float32), spaces.Box(-1, 1, (1,), np.float32))
    obs = [np.zeros(2, np.float32), np.ones(2, np.float32) * 0.5]
    ep = Episode(obs, [np.array([0.9], np.float32)] * 2, executed=[np.array([-0.9], np.float32)] * 2)
    seq = EpisodeLayout(spec, tm).steps(ep, 0, 2, with_bos=True)
    act = seq.kinds == Kind.CONTINUOUS_ACTION
    lo, _ = tm.continuous_range()
    assert (seq.ids[act] < lo + 512).all() and (seq.targets[act] >= lo + 512).all()  # -0.9 in, +0.9 out
    assert (seq.targets[~act] == seq.ids[~act]).all()
    batch = collate([seq, EpisodeLayout(spec, tm).steps(Episode(obs, ep.actions), 0, 2, True)], 16, tm)
    assert (batch.targets[0] != batch.ids[0]).sum() == 2 and (batch.targets[1] == batch.ids[1]).all()
    w = DatasetWriter(tmp_path, spec, {}, split="dagger", executed=True)
    w.add(ep, seed=1)
    w.add(Episode(obs, ep.actions), seed=2)  # executed = labels
    w.close()
    back = TaskDataset(tmp_path, "t/c").episodes("dagger")
    np.testing.assert_array_equal(back[0].executed[0], ep.executed[0])
    np.testing.assert_array_equal(back[1].executed[1], ep.actions[1])


def test_loss_weighting_is_checked_and_reaches_the_step():
    """The same first batch from the same weights: the row-weighted loss is another number."""
    import dataclasses

    from gato.training.config import TRAIN_PRESETS

    with pytest.raises(ValueError, match="loss_weighting must be token or row, got 'task'"):
        TrainConfig(loss_weighting="task")
    cfg = dataclasses.replace(TRAIN_PRESETS["tiny"], steps=1, batch_size=4, context=64, precision="fp32")
    token, row = Trainer(cfg), Trainer(dataclasses.replace(cfg, loss_weighting="row"))
    batch = token.data.sample_batch(4, 64)
    assert len(set(batch.loss_mask[:, 1:].sum(1).tolist())) > 1  # rows hold different target counts
    assert float(token.train_step(batch)[0]) != pytest.approx(float(row.train_step(batch)[0]), rel=1e-4)


def test_mixture_shares_count_the_rows_training_draws():
    """`gato mixture`: the shares are those of the rows training draws, and a source whose rows hold
    few targets gets less of a target-averaged loss than of the rows."""
    from gato.commands.train import mixture
    from gato.tokenization.text import TextTokenizer
    from gato.training.config import TRAIN_PRESETS, build_mixture

    out = {r["source"]: r for r in mixture(Path("synthetic"), recipe="tiny", context=64, rows=64)}
    assert sum(r["rows"] for r in out.values()) == pytest.approx(1.0)
    assert sum(r["targets"] for r in out.values()) == pytest.approx(1.0)
    cfg = TRAIN_PRESETS["tiny"]
    mix = build_mixture(cfg, get_preset(cfg.preset), TextTokenizer.default(), 64)
    total = sum(int(mix.batch(s, range(cfg.batch_size), 64).loss_mask[:, 1:].sum())
                for s in range(64 // cfg.batch_size))
    assert total == pytest.approx(sum(r["rows"] * 64 * r["targets_per_row"] for r in out.values() if r["rows"]))
    thin = min((r for r in out.values() if r["rows"]), key=lambda r: r["targets_per_row"])
    assert thin["targets"] < thin["rows"]


def test_mixture_filters_demonstrations_as_training_does(tmp_path):
    from gato.commands.data import collect
    from gato.commands.train import mixture

    collect(("control/cartpole",), episodes=2, test_episodes=1, out=tmp_path, progress=False)
    assert mixture(tmp_path, recipe="tiny", context=64, rows=8)[0]["source"] == "control/cartpole"
    with pytest.raises(ValueError, match="all 2 episodes are below 200% of the expert return"):
        mixture(tmp_path, recipe="tiny", context=64, rows=8, min_return=2.0)
