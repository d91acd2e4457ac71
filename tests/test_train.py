"""Tests for gato.training: the masked loss, the schedule, overfitting one batch, exact
kill-and-resume, checkpoint validation on restore, and the bf16 path (CUDA only).

Everything runs on CPU with a 2-layer, width-64 model and a few dozen tokens per row.
"""

from __future__ import annotations

import json

import dataclasses
import math
import shutil

import numpy as np
import pytest
import torch

from gato.config import ModelConfig
from gato.data.sampling import collate
from gato.tokenization.text import TextTokenizer
from gato.tokenization.vocab import Kind, TokenMap
from gato.training import checkpoint as ckpt
from gato.training.loss import loss_units, masked_loss, target_mask
from gato.training.schedule import lr_at
from gato.commands.train import train
from gato.training.config import TrainConfig
from gato.training.trainer import Trainer

from conftest import SMALL

TINY = dataclasses.replace(SMALL, context=128)
# Dropout on, so an exact resume also needs the torch RNG state (dropout, random patch positions).
RESUME_MODEL = dataclasses.replace(TINY, dropout=0.1)
RESUME = TrainConfig(steps=6, batch_size=2, context=48, lr=1e-3, warmup=2, log_every=1, checkpoint_every=2,
                     keep_checkpoints=2, prompt_tokens=16)


@pytest.fixture(scope="module")
def text() -> TextTokenizer:
    return TextTokenizer.default()


# ------------------------------------------------------------------------------ loss
def test_uniform_logits_give_log_vocab():
    V = 7
    loss_mask = torch.tensor([[True, False, True, True, False], [False, True, True, False, True]])
    kinds = torch.full(loss_mask.shape, int(Kind.TEXT), dtype=torch.uint8)
    kinds[1] = int(Kind.DISCRETE_ACTION)
    ids = torch.randint(0, V, loss_mask.shape)
    n = int(target_mask(loss_mask).sum())
    assert n == 5  # the first position is never a target: nothing precedes it
    loss, groups = masked_loss(torch.zeros(n, V), ids, kinds, loss_mask)
    assert math.isclose(loss.item(), math.log(V), rel_tol=1e-6)
    assert groups["text"][1].item() == 2 and groups["discrete_action"][1].item() == 3
    assert groups["continuous_action"].tolist() == [0.0, 0.0]
    assert math.isclose(groups["text"][0].item(), 2 * math.log(V), rel_tol=1e-6)


def test_hand_computed_loss_and_alignment():
    """Logits at position t predict the id at t + 1; rows come in row-major order."""
    loss_mask = torch.tensor([[False, True, False, True], [True, False, True, True]])
    ids = torch.tensor([[9, 1, 9, 3], [9, 9, 0, 2]])
    kinds = torch.tensor([[0, int(Kind.TEXT), 0, int(Kind.CONTINUOUS_ACTION)],
                          [int(Kind.TEXT), 0, int(Kind.DISCRETE_ACTION), int(Kind.TEXT_ACTION)]], dtype=torch.uint8)
    assert target_mask(loss_mask).tolist() == [[True, False, True, False], [False, True, True, False]]
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0],  # row 0, t=0 -> id 1
                           [0.0, 0.0, 0.0, 1.0],  # row 0, t=2 -> id 3
                           [1.0, 0.0, 0.0, 0.0],  # row 1, t=1 -> id 0
                           [0.0, 0.0, 3.0, 0.0]])  # row 1, t=2 -> id 2
    want = [-torch.log_softmax(logits[i], 0)[j].item() for i, j in enumerate([1, 3, 0, 2])]
    loss, groups = masked_loss(logits, ids, kinds, loss_mask)
    assert math.isclose(loss.item(), sum(want) / 4, rel_tol=1e-6)
    assert torch.allclose(groups["text"], torch.tensor([want[0] + want[3], 2.0]))
    assert torch.allclose(groups["continuous_action"], torch.tensor([want[1], 1.0]))
    assert torch.allclose(groups["discrete_action"], torch.tensor([want[2], 1.0]))


def test_only_target_positions_count():
    g = torch.Generator().manual_seed(0)
    B, T, V = 3, 12, 11
    loss_mask = torch.rand(B, T, generator=g) < 0.5
    kinds = torch.where(loss_mask, int(Kind.TEXT), int(Kind.DISCRETE_OBS)).to(torch.uint8)
    ids = torch.randint(0, V, (B, T), generator=g)
    full = torch.randn(B, T, V, generator=g)
    sel = target_mask(loss_mask)
    loss, _ = masked_loss(full[sel], ids, kinds, loss_mask)
    # other ids (observations, padding) and logits at positions that predict no target: no effect
    ids2 = torch.where(loss_mask, ids, (ids + 5) % V)
    full2 = torch.where(sel[..., None], full, torch.randn(B, T, V, generator=g) * 10)
    loss2, _ = masked_loss(full2[sel], ids2, kinds, loss_mask)
    assert torch.equal(loss, loss2)
    ids3 = ids.clone()  # a target id does matter
    t = loss_mask.nonzero()[-1]
    ids3[t[0], t[1]] = (ids3[t[0], t[1]] + 1) % V
    assert masked_loss(full[sel], ids3, kinds, loss_mask)[0] != loss


def test_row_weighting_averages_each_row_once():
    """loss_weighting row: each row's targets are averaged, then rows with a target are averaged,
    so a row of 2 targets counts as much as a row of 9 (token weighting: 9 / 11 of the loss)."""
    g = torch.Generator().manual_seed(1)
    T, V = 12, 11
    loss_mask = torch.zeros(3, T, dtype=torch.bool)
    loss_mask[0, [3, 7]] = True  # 2 targets
    loss_mask[1, 2:11] = True  # 9 targets
    loss_mask[2, 0] = True  # position 0 is never a target: this row has none
    kinds = torch.full((3, T), int(Kind.TEXT), dtype=torch.uint8)
    ids = torch.randint(0, V, (3, T), generator=g)
    sel = target_mask(loss_mask)
    logits = torch.randn(int(sel.sum()), V, generator=g)
    ce = torch.nn.functional.cross_entropy(logits, ids[:, 1:][loss_mask[:, 1:]], reduction="none")
    by_row = ce[:2].mean(), ce[2:].mean()
    row, _ = masked_loss(logits, ids, kinds, loss_mask, per_row=True)
    assert torch.allclose(row, (by_row[0] + by_row[1]) / 2)
    token, _ = masked_loss(logits, ids, kinds, loss_mask)
    assert torch.allclose(token, ce.mean()) and not torch.allclose(row, token)
    assert loss_units(loss_mask) == 11 and loss_units(loss_mask, per_row=True) == 2


def test_no_targets_gives_zero_loss_with_a_graph():
    logits = torch.zeros(0, 5, requires_grad=True)
    mask = torch.zeros(2, 4, dtype=torch.bool)
    loss, _ = masked_loss(logits, torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4, dtype=torch.uint8), mask)
    assert loss.item() == 0.0
    loss.backward()


# ------------------------------------------------------------------------------ schedule
def test_lr_schedule():
    peak, warmup, total = 1e-4, 100, 1000
    lrs = [lr_at(s, peak=peak, warmup=warmup, total=total) for s in range(total + 50)]
    assert math.isclose(lrs[0], 1e-7, rel_tol=1e-9)
    assert all(a < b for a, b in zip(lrs[:warmup], lrs[1:warmup + 1]))  # linear warm-up, rising
    assert math.isclose(lrs[warmup // 2], (1e-7 + peak) / 2, rel_tol=1e-9)
    assert math.isclose(lrs[warmup], peak, rel_tol=1e-12) and max(lrs) == lrs[warmup]
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))  # cosine decay, never rising
    assert math.isclose(lrs[total], 0.1 * peak, rel_tol=1e-12)
    assert all(math.isclose(x, 0.1 * peak, rel_tol=1e-12) for x in lrs[total:])  # flat after the end
    mid = lr_at((warmup + total) // 2, peak=peak, warmup=warmup, total=total)
    assert math.isclose(mid, 0.55 * peak, rel_tol=1e-9)  # half-way: the mean of peak and floor


def test_paper_schedule():
    kw = dict(peak=1e-4, warmup=15_000, total=1_000_000)
    assert math.isclose(lr_at(0, **kw), 1e-7) and math.isclose(lr_at(15_000, **kw), 1e-4)
    assert math.isclose(lr_at(1_000_000, **kw), 1e-5)


# ------------------------------------------------------------------------------ overfit
def one_of_each(trainer: Trainer, length: int, seed: int = 0):
    """One row from every synthetic source: discrete and continuous control, image task, text, captions."""
    rng = np.random.default_rng(seed)
    return collate([s.sample(rng, length) for s in trainer.data.sources], length, trainer.model_cfg.token_map)


def test_overfit_one_batch(text):
    cfg = TrainConfig(steps=100, batch_size=5, context=96, lr=3e-3, warmup=5, weight_decay=0.0, seed=0)
    trainer = Trainer(cfg, TINY, text=text)
    batch = one_of_each(trainer, 96)
    kinds = set(batch.kinds.unique().tolist())
    assert {Kind.TEXT, Kind.IMAGE, Kind.DISCRETE_ACTION, Kind.CONTINUOUS_ACTION} <= kinds
    assert batch.patches.shape[0] == int((batch.kinds == Kind.IMAGE).sum()) > 0

    def group_means(groups):
        return {k: (v[0] / v[1]).item() for k, v in groups.items()}

    loss, groups = trainer.train_step(batch)
    first, first_groups = loss.item(), group_means(groups)
    assert abs(first - math.log(TINY.vocab_size)) < 1.0  # ~8.7 at initialisation
    for _ in range(cfg.steps - 1):
        loss, groups = trainer.train_step(batch)
    last, last_groups = loss.item(), group_means(groups)
    print(f"overfit: loss {first:.3f} -> {last:.4f}; per group "
          + ", ".join(f"{k} {first_groups[k]:.3f} -> {last_groups[k]:.4f}" for k in first_groups))
    assert last < 0.5, f"could not overfit one batch: loss {first:.3f} -> {last:.3f}"
    for k in ("text", "discrete_action", "continuous_action"):
        assert last_groups[k] < first_groups[k] / 4, (k, first_groups[k], last_groups[k])


# ------------------------------------------------------------------------------ resume
def assert_same_state(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_state(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}/{i}")
    else:
        assert a == b, path


class Killed(RuntimeError):
    pass


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, text):
    """Run A: RESUME.steps steps without interruption."""
    run = tmp_path_factory.mktemp("run_a")
    trainer = Trainer(RESUME, RESUME_MODEL, text=text)
    trainer.fit(run, progress=False)
    return trainer, run


def test_kill_and_resume_is_exact(straight_run, tmp_path, monkeypatch, text):
    a, run_a = straight_run
    assert a.step == RESUME.steps
    # keep_checkpoints=2: only the newest two survive
    assert sorted(p.name for p in run_a.glob("step_*")) == [ckpt.checkpoint_name(4), ckpt.checkpoint_name(6)]

    run_b = tmp_path / "run_b"
    original = Trainer.train_step

    def dies_at_step_5(self, batch):
        if self.step == 4:  # about to compute step 5: the job is killed
            raise Killed("simulated kill")
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", dies_at_step_5)
    with pytest.raises(Killed):
        Trainer(RESUME, RESUME_MODEL, text=text).fit(run_b, progress=False)
    monkeypatch.setattr(Trainer, "train_step", original)
    latest = ckpt.latest_checkpoint(run_b)
    assert latest.name == ckpt.checkpoint_name(4)

    b = Trainer(RESUME, RESUME_MODEL, text=text)
    b.restore(latest)
    assert b.step == 4
    b.fit(run_b, progress=False)
    assert b.step == RESUME.steps

    assert_same_state(a.model.state_dict(), b.model.state_dict(), "model")
    assert_same_state(a.optimizer.state_dict(), b.optimizer.state_dict(), "optimizer")
    assert a.data.state_dict() == b.data.state_dict()
    # the final checkpoints on disk agree too
    last = ckpt.checkpoint_name(RESUME.steps)
    assert_same_state(ckpt.load_weights(run_a / last), ckpt.load_weights(run_b / last), "weights")


def test_checkpoint_meta(straight_run):
    _, run = straight_run
    meta = ckpt.load_meta(ckpt.latest_checkpoint(run))
    assert ModelConfig.from_dict(meta["model"]) == RESUME_MODEL
    assert meta["train"]["lr"] == RESUME.lr and meta["train"]["steps"] == RESUME.steps
    assert TokenMap.from_dict(meta["token_map"]) == RESUME_MODEL.token_map
    assert meta["tokenizer"] == TextTokenizer.default().reference()
    assert meta["tokenizer"]["sha256"] and meta["tokenizer"]["vocab_size"] <= RESUME_MODEL.text_vocab
    assert meta["step"] == RESUME.steps


def test_loaded_model_acts_within_its_training_context(straight_run):
    """Trained on 48-token rows, a 128-context model acts and generates in 48-token windows."""
    from gato.training.loading import load_model

    from gato.agent import GatoAgent
    from gato.data.episode import TaskSpec
    from gato.envs import get_task
    from gato.generation import generate, text_prompt

    _, run = straight_run
    model, meta = load_model(run)
    assert meta["model"]["context"] == 128 and model.cfg.context == RESUME.context == 48
    env = get_task("control/cartpole").make()
    agent = GatoAgent(model, TaskSpec("control/cartpole", env.observation_space, env.action_space), 1)
    obs, _ = env.reset(seed=0)
    for _ in range(30):  # 6 tokens a step: 180 tokens, past 48 several times
        obs, _, term, trunc, _ = env.step(agent.act([obs])[0])
        if term or trunc:
            obs, _ = env.reset(seed=1)
            agent.reset()
        assert len(agent.window(0)) <= 48  # never conditions on more than it was trained on
    out = generate(model, [text_prompt(np.array([5, 6, 7]), model.cfg.token_map)], 60)
    assert len(out[0]) == 60


def test_checkpoint_carries_its_tokenizer(straight_run, tmp_path):
    import json

    from gato.training.config import TOKENIZER_FILE
    from gato.training.loading import load_tokenizer

    _, run = straight_run
    src = ckpt.latest_checkpoint(run)
    assert (src / TOKENIZER_FILE).read_bytes() == TextTokenizer.default().to_bytes()
    assert load_tokenizer(run).sha256 == TextTokenizer.default().sha256
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    meta = json.loads((copy / "config.json").read_text())
    meta["tokenizer"]["sha256"] = "0" * 64  # as if trained with another tokenizer
    (copy / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="trained with tokenizer"):
        load_tokenizer(copy)
    (copy / TOKENIZER_FILE).unlink()
    with pytest.raises(ValueError, match=TOKENIZER_FILE):
        load_tokenizer(copy)


def test_export_keeps_what_acting_needs(straight_run, tmp_path):
    from gato.commands.train import export
    from gato.training.config import TOKENIZER_FILE
    from gato.training.loading import load_model

    _, run = straight_run
    out = export(run, tmp_path / "shared")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors", TOKENIZER_FILE]
    model, meta = load_model(out)
    assert meta["step"] == RESUME.steps
    assert_same_state(model.state_dict(), ckpt.load_weights(ckpt.latest_checkpoint(run)), "weights")


def test_truncated_weights_fail_clearly_on_restore(straight_run, tmp_path, text):
    _, run = straight_run
    bad = tmp_path / "bad"
    shutil.copytree(ckpt.latest_checkpoint(run), bad)
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    trainer = Trainer(RESUME, RESUME_MODEL, text=text)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(ckpt.CheckpointError, match="truncated or corrupt"):
        trainer.restore(bad)
    assert_same_state(before, trainer.model.state_dict(), "untouched")  # no partial load
    assert trainer.step == 0


def test_checkpoint_of_another_model_fails_on_restore(straight_run, text):
    _, run = straight_run
    other = Trainer(RESUME, dataclasses.replace(RESUME_MODEL, width=96, num_heads=3), text=text)
    with pytest.raises(ValueError, match=r"model config differs.*num_heads: 2 vs 3.*width: 64 vs 96"):
        other.restore(ckpt.latest_checkpoint(run))


def train_kwargs(**over):
    """train() arguments that reproduce RESUME (the run folder's config)."""
    kw = dict(recipe="tiny", preset="gato-tiny", steps=RESUME.steps, batch_size=RESUME.batch_size,
              lr=RESUME.lr, context=RESUME.context, warmup=RESUME.warmup, log_every=RESUME.log_every,
              checkpoint_every=RESUME.checkpoint_every, device="cpu", progress=False)
    return kw | over


def test_train_refuses_a_folder_with_checkpoints(straight_run):
    _, run = straight_run
    with pytest.raises(ValueError, match="already holds checkpoints.*resume"):
        train(run, **train_kwargs())


def test_resume_with_another_config_names_the_key(straight_run):
    _, run = straight_run
    with pytest.raises(ValueError, match="--resume continues the saved configuration") as e:
        train(run, resume=True, **train_kwargs(lr=5e-4))
    msg = str(e.value)
    assert "lr=0.0005 (saved 0.001)" in msg
    assert "batch_size=" not in msg and "context=" not in msg  # only what differs is named


def test_resume_needs_only_the_folder(tmp_path):
    """--resume takes the saved configuration: no flag has to be repeated."""
    train(tmp_path / "run", steps=2, batch_size=2, context=32, warmup=1, lr=3e-4, checkpoint_every=2,
          progress=False)
    done = train(tmp_path / "run", resume=True, steps=3, progress=False)
    assert done["step"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["lr"] == 3e-4


def test_max_minutes_stops_with_a_checkpoint_and_says_how_to_go_on(tmp_path, capsys):
    kw = dict(steps=50, batch_size=2, context=32, warmup=1, checkpoint_every=50, progress=False)
    stopped = train(tmp_path / "run", max_minutes=1e-6, **kw)  # out of time after the first step
    assert stopped["step"] == 1 and ckpt.latest_checkpoint(tmp_path / "run").name == "step_00000001"
    assert f"stopped at step 1 of 50 after 1e-06 minutes (max_minutes), with a checkpoint in {tmp_path / 'run'} " \
           f"to resume from" in capsys.readouterr().out
    assert train(tmp_path / "run", resume=True, steps=2, progress=False)["step"] == 2
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError, match=f"max_minutes must be >= 0, got {bad}"):
            train(tmp_path / "other", max_minutes=bad, **kw)


def test_train_resume_through_the_entry_point_is_exact(tmp_path, monkeypatch):
    """The `gato train` path: the gato-tiny preset, killed after its step-2 checkpoint, resumed
    with resume=True; the final checkpoint (weights, optimizer, data cursor, RNG) equals a straight run's."""
    kw = dict(recipe="tiny", preset="gato-tiny", steps=4, batch_size=2, context=32, warmup=1, log_every=1,
              checkpoint_every=2, device="cpu", progress=False)
    train(tmp_path / "a", **kw)
    original = Trainer.train_step

    def dies_at_step_4(self, batch):
        if self.step == 3:
            raise Killed("simulated kill")
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", dies_at_step_4)
    with pytest.raises(Killed):
        train(tmp_path / "b", **kw)
    monkeypatch.setattr(Trainer, "train_step", original)
    assert ckpt.latest_checkpoint(tmp_path / "b").name == ckpt.checkpoint_name(2)
    assert train(tmp_path / "b", resume=True, **kw)["step"] == 4
    last = ckpt.checkpoint_name(4)
    assert_same_state(ckpt.load_weights(tmp_path / "a" / last), ckpt.load_weights(tmp_path / "b" / last), "weights")
    assert_same_state(ckpt.load_state(tmp_path / "a" / last), ckpt.load_state(tmp_path / "b" / last), "state")


# ------------------------------------------------------------------------------ bf16 (CUDA)
@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast is used on CUDA only")
def test_bf16_autocast_on_cuda(text):
    cfg = TrainConfig(steps=30, batch_size=5, context=96, lr=3e-3, warmup=2, weight_decay=0.0)
    trainer = Trainer(cfg, TINY, device="cuda", text=text)
    batch = one_of_each(trainer, 96)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        logits, _ = trainer.model.eval()(*batch.to("cuda").inputs())
    assert logits.dtype == torch.bfloat16
    with torch.no_grad():
        ref, _ = trainer.model(*batch.to("cuda").inputs())
    assert ref.dtype == torch.float32 and (logits.float() - ref).abs().max() < 0.05
    losses = [trainer.train_step(batch)[0].item() for _ in range(cfg.steps)]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0] / 2
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights stay fp32


def test_a_checkpoint_from_before_a_new_field_resumes_with_its_default(tmp_path):
    train(tmp_path / "run", steps=2, batch_size=2, context=32, warmup=1, checkpoint_every=2, progress=False)
    meta_file = ckpt.latest_checkpoint(tmp_path / "run") / "config.json"
    meta = json.loads(meta_file.read_text())
    del meta["train"]["max_episodes"], meta["train"]["init"]  # as written by an older version
    meta_file.write_text(json.dumps(meta))
    assert train(tmp_path / "run", resume=True, steps=3, progress=False)["step"] == 3


def test_weights_keep_the_observation_order_they_were_trained_with(tmp_path):
    """A checkpoint saved before the paper's text-first order existed read BabyAI's grid before its
    mission: resumed or used as --init, it keeps that order, unless the order is asked for."""
    train(tmp_path / "old", steps=2, batch_size=2, context=32, warmup=1, checkpoint_every=2, progress=False)
    for meta_file in [*(tmp_path / "old").glob("step_*/config.json"), tmp_path / "old" / "config.json"]:
        meta = json.loads(meta_file.read_text())
        assert meta["model"].pop("observation_order") == "modality"  # a new model: the paper's order
        meta["train"].pop("observation_order")
        meta_file.write_text(json.dumps(meta))  # as written before the field existed

    def order(run):
        return json.loads((run / "config.json").read_text())["model"].get("observation_order")

    train(tmp_path / "old", resume=True, steps=3, progress=False)
    assert order(tmp_path / "old") == "key"
    init = str(ckpt.latest_checkpoint(tmp_path / "old"))
    train(tmp_path / "cont", steps=1, batch_size=2, context=32, warmup=1, init=init, progress=False)
    assert order(tmp_path / "cont") == "key"
    train(tmp_path / "paper", steps=1, batch_size=2, context=32, warmup=1, init=init, observation_order="modality",
          progress=False)
    assert order(tmp_path / "paper") == "modality"


def test_every_training_field_is_a_documented_flag_of_train():
    """`gato train` sets any TrainConfig field (one source of truth: a new field without a flag
    fails here), each flag defaults to None (= the recipe's value) and says what it does."""
    import inspect

    params = inspect.signature(train).parameters
    for f in dataclasses.fields(TrainConfig):
        assert f.name in params, f"TrainConfig.{f.name} cannot be set from `gato train`"
        assert params[f.name].default is None, f"--{f.name} must default to the recipe's value"
        assert f"\n        {f.name}: " in train.__doc__, f"--{f.name} has no help text"


def test_fields_once_missing_from_the_cli_reach_the_saved_config(tmp_path):
    train(tmp_path / "run", steps=1, batch_size=2, context=32, warmup=1, checkpoint_every=1, grad_clip=0.5,
          betas=(0.8, 0.9), prompt_tokens=8, final_lr_ratio=0.5, max_episodes=0, progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert (saved["grad_clip"], saved["betas"], saved["prompt_tokens"], saved["final_lr_ratio"]) == \
        (0.5, [0.8, 0.9], 8, 0.5)


def test_the_model_card_says_when_the_weights_continued_another_checkpoint():
    from gato.model_card import model_card

    meta = {"step": 1200, "model": {"name": "gato-tiny"}, "train": {"steps": 1200, "init": "runs/dq/round-6"}}
    assert "continued the weights of `runs/dq/round-6`" in model_card(meta, [])
    assert "continued" not in model_card({**meta, "train": {"steps": 1200, "init": ""}}, [])
    card = model_card({**meta, "train": {"steps": 1, "task_weights": ["babyai/PickupDist=3"]}}, [])
    assert "more rows for `babyai/PickupDist=3` (task weights)." in card and "--loss-weighting" not in card
    assert "Every row weighed the same" in model_card({**meta, "train": {"steps": 1, "loss_weighting": "row"}}, [])
    merged = {**meta, "merged": {"weight": 0.5, "parents": [{"path": "runs/a"}, {"path": "runs/dq/round-7"}]}}
    assert "0.5 x `runs/a` + 0.5 x `runs/dq/round-7` (`gato merge`" in model_card(merged, [])
    assert "gato merge" not in model_card(meta, [])
    # the order the observations are read in: a saved model without the field was trained by key
    assert "BabyAI's grid comes before its mission" in model_card(meta, [])
    paper = model_card({**meta, "model": {"name": "gato-tiny", "observation_order": "modality"}}, [])
    assert "the paper's order: text, image patches, then tensors" in paper
