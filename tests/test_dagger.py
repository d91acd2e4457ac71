"""DAgger with the in-repo experts: learner rollouts relabelled by the expert, written as a
round's shards, trained on; and demonstration prompts that travel with an exported checkpoint."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from gato.commands.dagger import _kept, dagger
from gato.dagger import ExpertLabels, check_labelable, round_seeds, seed_round
from gato.commands.data import collect
from gato.data.storage import TaskDataset
from gato.envs import get_task
from gato.envs.scores import load_scores
from gato.evaluation.metrics import reference_means
from gato.rollout import PolicyActor, RandomPolicy, run
from gato.training import checkpoint as ckpt
from gato.commands.train import export, train

SMALL = dict(steps=4, batch_size=2, context=64, warmup=1, progress=False, checkpoint_every=4)


def _pendulum_run(tmp_path, episodes: int, test_episodes: int):
    """A data root of pendulum demonstrations and a tiny run trained on it: (data, run)."""
    data = tmp_path / "data"
    collect(("control/pendulum",), episodes=episodes, test_episodes=test_episodes, out=data, progress=False)
    train(out=tmp_path / "base", data=str(data), **SMALL)
    return data, tmp_path / "base"


def test_expert_labels_every_state_the_learner_visits():
    task = get_task("mujoco/inverted-pendulum")
    envs = [task.make() for _ in range(3)]
    experts = [task.make_expert(e) for e in envs]
    learner = PolicyActor([RandomPolicy(e) for e in envs])  # a bad learner: the pole falls
    results = run(task, envs, ExpertLabels(learner, experts), [5, 6, 7, 8])
    assert [r.seed for r in results] == [5, 6, 7, 8]
    probe = task.make_expert(task.make())
    for r in results:
        assert r.length < 100  # the learner's trajectory, not the expert's (which lasts 1000 steps)
        for obs, label in zip(r.episode.observations, r.episode.actions):
            np.testing.assert_array_equal(label, probe(obs))  # the expert's answer in that state


def test_beta_executes_the_expert_on_that_share_of_steps_reproducibly():
    """The original DAgger's mixture: with beta = 1 the expert drives (the pole stays up for the
    whole episode) and with 0.5 about half the executed actions are the expert's, the same ones
    on a re-run; every state is still labelled by the expert."""
    task = get_task("mujoco/inverted-pendulum")
    envs = [task.make() for _ in range(2)]
    experts = [task.make_expert(e) for e in envs]
    learner = PolicyActor([RandomPolicy(e) for e in envs])
    driven = run(task, envs, ExpertLabels(learner, experts, beta=1.0), [5, 6], max_steps=300)
    assert [r.length for r in driven] == [300, 300]
    assert all(np.array_equal(e, a) for r in driven for e, a in zip(r.episode.executed, r.episode.actions))

    def mixed():
        res = run(task, envs, ExpertLabels(learner, experts, beta=0.5), [5, 6, 7, 8])
        return [[np.array_equal(e, a) for e, a in zip(r.episode.executed, r.episode.actions)] for r in res]

    first = mixed()
    share = np.mean([x for ep in first for x in ep])
    assert 0.3 < share < 0.7, share
    assert mixed() == first
    with pytest.raises(ValueError, match="beta"):
        ExpertLabels(learner, experts, beta=1.5)


def test_tasks_whose_expert_cannot_label_are_refused_by_name():
    with pytest.raises(ValueError, match="box2d/bipedalwalker .*state machine"):
        check_labelable([get_task("control/cartpole"), get_task("box2d/bipedalwalker")])
    assert seed_round(round_seeds(3, 5)[4]) == 3 and seed_round(100_000) is None
    with pytest.raises(ValueError, match="round"):
        round_seeds(0, 5)


def test_a_dagger_round_writes_labelled_shards_trains_and_resumes(tmp_path):
    data, base = _pendulum_run(tmp_path, episodes=3, test_episodes=1)
    log = dagger(base, rounds=2, episodes=2, steps=3, out=tmp_path / "dagger", envs=2, progress=False, beta=0.5)
    ds = TaskDataset(data, "control/pendulum")
    assert len(ds.episodes("dagger")) == 4  # two rounds of two
    assert [log["rounds"][r]["beta"] for r in ("1", "2")] == [0.5, 0.25]  # beta ** round
    forced = [np.array_equal(e, a) for ep in ds.episodes("dagger") for e, a in zip(ep.executed, ep.actions)]
    assert 0 < np.mean(forced) < 0.6  # the expert ran on some steps, the learner on the others
    assert {seed_round(s) for s in ds.card["splits"]["dagger"]["seeds"][0]} <= {1, 2}
    assert (tmp_path / "dagger" / "round-2").is_dir() and log["final"].endswith("step_00000003")
    row = json.loads((tmp_path / "dagger" / "dagger.json").read_text())["rounds"]["2"]["tasks"][0]
    assert row["new_episodes"] == 2
    r, e = reference_means(load_scores(), "control/pendulum")  # the learner's return, normalised as eval does
    assert row["learner_normalized"] == pytest.approx((row["learner_return"] - r) / (e - r))
    # Run again: nothing is redone.
    again = dagger(base, rounds=2, episodes=2, steps=3, out=tmp_path / "dagger", envs=2, progress=False)
    assert again["final"] == log["final"] and len(TaskDataset(data, "control/pendulum").episodes("dagger")) == 4
    # Killed in round 2's training, before its first checkpoint: the re-run trains again and the
    # round's score is still the one its rollouts made (read back from its shards).
    shutil.rmtree(tmp_path / "dagger" / "round-2")
    again = dagger(base, rounds=2, episodes=2, steps=3, out=tmp_path / "dagger", envs=2, progress=False)
    kept = again["rounds"]["2"]["tasks"][0]
    assert kept["new_episodes"] == 0 and kept["learner_episodes"] == 2
    assert kept["learner_return"] == pytest.approx(row["learner_return"])
    # Continue the aggregate from another checkpoint (round 1's) in another folder, as round 3.
    more = dagger(log["rounds"]["2"]["policy"], rounds=3, first_round=3, episodes=2, steps=3, out=tmp_path / "d3",
                  envs=2, progress=False, beta=0.5)
    ds = TaskDataset(data, "control/pendulum")
    assert list(more["rounds"]) == ["3"] and more["rounds"]["3"]["beta"] == 0.125 and more["first_round"] == 3
    assert more["rounds"]["3"]["tasks"][0]["new_episodes"] == 2 and len(ds.episodes("dagger")) == 6
    assert {seed_round(s) for seeds in ds.card["splits"]["dagger"]["seeds"] for s in seeds} == {1, 2, 3}
    with pytest.raises(ValueError, match="--first-round 3"):  # that folder's rounds start at 3
        dagger(base, rounds=3, episodes=2, steps=3, out=tmp_path / "d3", envs=2, progress=False)


def test_dagger_keep_starts_each_round_from_its_merge_with_the_start(tmp_path):
    _, base = _pendulum_run(tmp_path, episodes=2, test_episodes=0)
    log = dagger(base, rounds=2, episodes=1, steps=3, out=tmp_path / "d", envs=1, progress=False, keep=0.25,
                 task_weights=("control/pendulum=2",), loss_weighting="row")
    saved = ckpt.load_meta(ckpt.latest_checkpoint(tmp_path / "d" / "round-1"))["train"]
    # the rounds train with the weights and the loss given, saved with each checkpoint
    assert saved["task_weights"] == ["control/pendulum=2"] and saved["loss_weighting"] == "row"
    merged = [tmp_path / "d" / f"round-{r}-merged" for r in (1, 2)]
    assert log["rounds"]["2"]["policy"] == str(merged[0]) and log["final"] == str(merged[1])
    starts = [ckpt.latest_checkpoint(base), merged[0]]
    for r, start, m in zip((1, 2), starts, merged):
        trained = ckpt.latest_checkpoint(tmp_path / "d" / f"round-{r}")
        a, b, got = ckpt.load_weights(start), ckpt.load_weights(trained), ckpt.load_weights(m)
        assert not all(torch.equal(a[k], b[k]) for k in a)  # the round trained
        for k in a:
            torch.testing.assert_close(got[k], 0.25 * a[k] + 0.75 * b[k], rtol=0, atol=1e-6)
        assert ckpt.load_meta(m)["merged"]["parents"][1]["path"] == str(trained)
    stamp = (merged[1] / "config.json").stat().st_mtime_ns
    again = dagger(base, rounds=2, episodes=1, steps=3, out=tmp_path / "d", envs=1, progress=False, keep=0.25)
    assert again["final"] == log["final"] and (merged[1] / "config.json").stat().st_mtime_ns == stamp  # reused
    # A round's newest checkpoint changes (stopped by --max-minutes, then resumed): merged again.
    first, second = (ckpt.latest_checkpoint(tmp_path / "d" / f"round-{r}") for r in (1, 2))
    _kept(starts[0], first, 0.25, tmp_path / "m")
    assert _kept(starts[0], second, 0.25, tmp_path / "m") == tmp_path / "m"
    assert ckpt.load_meta(tmp_path / "m")["merged"]["parents"][1]["path"] == str(second)
    with pytest.raises(ValueError, match="--keep must be in"):
        dagger(base, keep=1.0, out=tmp_path / "e", progress=False)


def test_dagger_refuses_a_task_it_cannot_label_before_any_rollout(tmp_path):
    data, _ = _pendulum_run(tmp_path, episodes=2, test_episodes=1)
    with pytest.raises(ValueError, match="bipedalwalker"):
        dagger(tmp_path / "base", tasks=("box2d/bipedalwalker",), out=tmp_path / "d", progress=False)
    with pytest.raises(ValueError, match="--beta"):
        dagger(tmp_path / "base", beta=1.0, out=tmp_path / "d", progress=False)
    with pytest.raises(ValueError, match="--first-round"):
        dagger(tmp_path / "base", rounds=2, first_round=3, out=tmp_path / "d", progress=False)
    with pytest.raises(ValueError, match="--task-weights name control/cartpole"):
        dagger(tmp_path / "base", task_weights=("control/cartpole=2",), out=tmp_path / "d", progress=False)
    assert not (data / "control" / "pendulum" / "dagger").exists()


def test_exported_checkpoint_carries_prompts_that_eval_uses(tmp_path):
    from gato.commands.evaluate import evaluate

    data = tmp_path / "data"
    collect(("control/cartpole",), episodes=2, test_episodes=1, out=data, progress=False)
    train(out=tmp_path / "run", data=str(data), **SMALL)
    shipped = export(tmp_path / "run", out=tmp_path / "shipped")
    card = (shipped / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: gato") and "`control/cartpole`" in card
    tail = TaskDataset(shipped / "prompts", "control/cartpole").episodes("train")
    assert len(tail) == 1 and 0 < len(tail[0]) < 500  # just the final steps, not the whole episode
    r = evaluate(shipped, tasks=("control/cartpole",), episodes=1, envs=1, out=tmp_path / "e", videos=0)
    assert r["tasks"]["control/cartpole"]["prompt_tokens"] == 16  # a quarter of the 64-token context
    r = evaluate(shipped, tasks=("control/cartpole",), episodes=1, envs=1, out=tmp_path / "e2", videos=0,
                 prompt=False)
    assert r["tasks"]["control/cartpole"]["prompt_tokens"] == 0


def test_data_report_shows_an_uninformative_expert(tmp_path):
    from gato.commands.data import data_report

    collect(("mujoco/inverted-pendulum",), episodes=2, test_episodes=1, out=tmp_path / "clean", progress=False)
    collect(("mujoco/inverted-pendulum",), episodes=2, test_episodes=1, out=tmp_path / "noisy", progress=False,
            noise=0.1)
    clean, = data_report(tmp_path / "clean")
    noisy, = data_report(tmp_path / "noisy")
    assert clean["action_ids_distinct"][0] < 30 < noisy["action_ids_distinct"][0]
    assert clean["action_entropy_nats"][0] < 2.0 < noisy["action_entropy_nats"][0]
    card = TaskDataset(tmp_path / "noisy", "mujoco/inverted-pendulum").card
    assert card["diagnostics"]["action_ids_distinct"] == noisy["action_ids_distinct"]


def test_learning_curve_points_during_training_reach_the_report(tmp_path):
    from gato.commands.evaluate import evaluate

    data = tmp_path / "data"
    collect(("control/cartpole",), episodes=2, test_episodes=1, out=data, progress=False)
    train(out=tmp_path / "run", data=str(data), eval_every=2, eval_episodes=2, **(SMALL | {"checkpoint_every": 2}))
    points = json.loads((tmp_path / "run" / "curve.json").read_text())
    assert [p["step"] for p in points] == [2, 4] and points[1]["tokens"] == 4 * 2 * 64
    assert set(points[0]["scores"]) == {"control/cartpole"} and points[0]["mean"] is not None
    r = evaluate(tmp_path / "run", tasks=("control/cartpole",), episodes=1, envs=1, out=tmp_path / "e", videos=0)
    assert len(r["learning_curve"]) == 2 and (tmp_path / "e" / "curve.png").exists()
    with pytest.raises(ValueError, match="multiple of checkpoint_every"):
        train(out=tmp_path / "run2", data=str(data), eval_every=3, **(SMALL | {"checkpoint_every": 2}))


@pytest.mark.slow
def test_a_dagger_round_beats_more_cloning_on_a_cheap_task(tmp_path):
    """dm_control cartpole-balance never ends early, so the learner's drift yields 1000 labelled
    states per episode. Cloned from 8 clean LQR demonstrations (near-constant actions), then given
    the same extra training steps either on the same demonstrations or on them plus one DAgger
    round, the DAgger model balances better."""
    from gato.commands.evaluate import evaluate

    data = tmp_path / "data"
    collect(("dmc/cartpole-balance",), episodes=8, test_episodes=1, out=data, progress=False)
    kw = dict(batch_size=8, context=256, warmup=20, progress=False, checkpoint_every=100)
    train(out=tmp_path / "base", data=str(data), steps=200, **kw)
    train(out=tmp_path / "bc", data=str(data), steps=200, init=str(tmp_path / "base"), **kw)
    shutil.copytree(data, tmp_path / "aggregate")
    dagger(tmp_path / "base", data=tmp_path / "aggregate", rounds=1, episodes=4, steps=200, out=tmp_path / "dagger",
           envs=4, progress=False)
    score = {}
    for name, ck in (("bc", tmp_path / "bc"), ("dagger", tmp_path / "dagger" / "round-1")):
        r = evaluate(ck, tasks=("dmc/cartpole-balance",), episodes=4, envs=4, out=tmp_path / f"e-{name}", videos=0,
                     data=data, vl=False)
        score[name] = r["tasks"]["dmc/cartpole-balance"]["mean"]
    assert score["dagger"] > score["bc"], score


def test_finetune_learns_a_new_task_from_a_pretrained_checkpoint_and_resumes(tmp_path):
    from gato.commands.finetune import finetune

    data = tmp_path / "data"
    collect(("control/cartpole",), episodes=2, test_episodes=1, out=data, progress=False)
    train(out=tmp_path / "pre", data=str(data), task_weights=("control/cartpole=2",), **SMALL)
    r = finetune(tmp_path / "pre", task="control/acrobot", episodes=2, steps=3, out=tmp_path / "ft", eval_episodes=1,
                 progress=False)
    assert r["checkpoint"].endswith("step_00000003") and r["normalized"] is not None
    cfg = json.loads((tmp_path / "ft" / "model" / "config.json").read_text())["train"]
    assert cfg["tasks"] == ["control/acrobot"] and cfg["max_episodes"] == 2 and cfg["init"].endswith("step_00000004")
    assert cfg["task_weights"] == []  # the pretrained mixture's weights name tasks it no longer trains on
    d = dagger(tmp_path / "pre", data=tmp_path / "ft" / "data", rounds=1, episodes=1, steps=1, envs=1,
               out=tmp_path / "d", progress=False)  # the same for DAgger on a root without cartpole
    assert ckpt.load_meta(d["final"])["train"]["task_weights"] == []
    again = finetune(tmp_path / "pre", task="control/acrobot", episodes=2, steps=3, out=tmp_path / "ft",
                     eval_episodes=0, progress=False)
    assert again["checkpoint"] == r["checkpoint"]  # finished: nothing is retrained
    s = finetune(tmp_path / "pre", task="control/acrobot", episodes=2, steps=3, out=tmp_path / "scratch",
                 eval_episodes=0, scratch=True, progress=False)
    assert json.loads((tmp_path / "scratch" / "model" / "config.json").read_text())["train"]["init"] == ""
    assert s["scratch"]


def test_dagger_samples_the_learners_discrete_actions_reproducibly_when_asked(tmp_path):
    from gato.dagger import collect_round
    from gato.training.loading import load_checkpoint

    data = tmp_path / "data"
    collect(("control/cartpole",), episodes=3, test_episodes=1, out=data, progress=False)
    train(out=tmp_path / "base", data=str(data), **SMALL)
    model, _, text = load_checkpoint(tmp_path / "base", "cpu")

    def executed(name, **kw):
        root = tmp_path / name
        shutil.copytree(data, root)
        collect_round(model, text, get_task("control/cartpole"), root, 1, 4, num_envs=2, **kw)
        return [int(np.asarray(a)) for ep in TaskDataset(root, "control/cartpole").episodes("dagger")
                for a in ep.executed]

    sampled = executed("sampled", discrete_temperature=1.0)
    assert sampled == executed("again", discrete_temperature=1.0)
    assert sampled != executed("greedy")
    with pytest.raises(ValueError, match="--discrete-temperature"):
        dagger(tmp_path / "base", rounds=1, episodes=1, steps=1, out=tmp_path / "d", discrete_temperature=-1.0)
