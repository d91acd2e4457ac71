"""`gato experiment`: the runners' bookkeeping (cells, resume, refusals) and a real tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gato.commands.finetune as finetune_module
from gato.commands.experiment import experiment_finetune, experiment_mission, experiment_prompts, experiment_scaling

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "gato-tiny"


def test_finetune_experiment_runs_each_cell_once_resumes_and_writes_figure9(tmp_path, monkeypatch):
    calls = []

    def fake(checkpoint, task, *, episodes, scratch, **kw):  # the cells' bookkeeping, not the training
        calls.append((task, episodes, scratch))
        return {"task": task, "episodes": episodes, "scratch": scratch, "normalized": 0.1 * episodes - 0.2 * scratch}

    monkeypatch.setattr(finetune_module, "finetune", fake)
    kw = dict(tasks=("control/acrobot",), demos=(1, 2), steps=1, eval_episodes=1, out=tmp_path / "x", progress=False)
    monkeypatch.setattr("gato.commands.experiment._refuse_seen", lambda checkpoint, tasks: None)
    first = experiment_finetune(tmp_path / "pre", **kw)
    assert sorted(calls) == [("control/acrobot", 1, False), ("control/acrobot", 1, True),
                             ("control/acrobot", 2, False), ("control/acrobot", 2, True)]
    again = experiment_finetune(tmp_path / "pre", **kw)  # a rerun: every cell is done
    assert len(calls) == 4 and again["cells"] == first["cells"]
    table = (tmp_path / "x" / "results.md").read_text()
    assert "| control/acrobot | 2 | 20.0% | 0.0% | +20.0 pp |" in table
    assert (tmp_path / "x" / "figure9.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="holds another experiment"):
        experiment_finetune(tmp_path / "pre", **kw | {"steps": 2})


def test_finetune_experiment_refuses_a_task_the_checkpoint_was_trained_on(tmp_path):
    with pytest.raises(ValueError, match="was trained on control/cartpole: not held out"):
        experiment_finetune(SHIPPED, tasks=("control/cartpole",), out=tmp_path / "x", progress=False)


@pytest.mark.slow
def test_prompt_experiment_on_the_shipped_checkpoint(tmp_path):
    r = experiment_prompts(SHIPPED, tasks=("control/cartpole", "babyai/GoToRedBallGrey"), episodes=2, demos=1,
                           out=tmp_path / "p", device="cpu", progress=False)
    cells = {(c["task"], c["prompt"]): c for c in r["cells"]}
    assert len(cells) == 6 and cells[("control/cartpole", "own")]["seen"]
    assert not cells[("babyai/GoToRedBallGrey", "none")]["seen"]
    assert cells[("control/cartpole", "other")]["prompt_task"] == "babyai/GoToRedBallGrey"
    saved = json.loads((tmp_path / "p" / "experiment.json").read_text())
    assert saved["args"]["episodes"] == 2 and "| control/cartpole | yes |" in (tmp_path / "p" / "results.md").read_text()
    assert (tmp_path / "p" / "prompts.png").stat().st_size > 1000


def test_scaling_experiment_trains_each_size_on_equal_tokens_and_resumes(tmp_path):
    from gato.commands.data import collect

    collect(("control/cartpole",), episodes=2, test_episodes=1, out=tmp_path / "data", progress=False)
    kw = dict(presets=("gato-mini", "gato-tiny"), data=tmp_path / "data", tasks=("control/cartpole",), steps=2,
              batch_size=2, context=64, eval_every=1, eval_episodes=1, out=tmp_path / "s", device="cpu",
              progress=False)
    first = experiment_scaling(**kw)
    cells = {c["preset"]: c for c in first["cells"]}
    assert cells["gato-mini"]["params"] < cells["gato-tiny"]["params"]
    for c in cells.values():
        assert c["tokens"] == 2 * 2 * 64 and [p["step"] for p in c["curve"]] == [1, 2]
        assert set(c["curve"][-1]["scores"]) == {"control/cartpole"}
    ckpt = tmp_path / "s" / "runs" / "gato-tiny" / "step_00000002" / "model.safetensors"
    before = ckpt.stat().st_mtime_ns
    again = experiment_scaling(**kw)  # every size is done: nothing is trained again
    assert again["cells"] == first["cells"] and ckpt.stat().st_mtime_ns == before
    tiny_loss = json.loads((tmp_path / "s" / "runs" / "gato-tiny" / "history.json").read_text())[-1]["loss"]
    assert cells["gato-tiny"]["history"][-1]["loss"] == tiny_loss
    assert "| gato-tiny | 3.2M | 0.00M |" in (tmp_path / "s" / "results.md").read_text()
    assert (tmp_path / "s" / "figure8.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="unknown preset 'gato-huge'"):
        experiment_scaling(**kw | {"presets": ("gato-huge",), "out": tmp_path / "t"})


def _reader(env):
    """The BabyAI bot planning for whatever the observed mission text names: a policy that reads."""
    from minigrid.envs.babyai.core.verifier import ObjDesc, PickupInstr

    from gato.envs.babyai import BotExpert, _Seen

    state = {}

    def act(obs):
        words = obs["mission"].split()[3:]  # "pick up the|a [colour] [type|object]"
        colour = words[0] if len(words) == 2 else (None if words[0] in ("ball", "box", "key", "object") else words[0])
        kind = None if words[-1] == "object" else (words[-1] if words[-1] in ("ball", "box", "key") else None)
        if state.get("mission") != obs["mission"]:
            instrs = PickupInstr(ObjDesc(kind, colour))
            instrs.reset_verifier(env.unwrapped)
            state.update(mission=obs["mission"], bot=BotExpert(_Seen(env, instrs)))
        return state["bot"](obs)
    return act


def test_the_mission_probe_tells_a_reader_from_a_policy_that_ignores_the_text():
    from gato.envs.babyai import BotExpert
    from gato.evaluation import grounding

    seeds = list(range(10_000, 10_012))
    reads = grounding.mission_probe(lambda env, seed: _reader(env), seeds)
    ignores = grounding.mission_probe(lambda env, seed: BotExpert(env), seeds)  # plans from the true mission
    assert reads["layouts"] == ignores["layouts"] == 12 and reads["made_up_layouts"] >= 8
    assert reads["true_matches"] == 12 and reads["made_up_followed"] == reads["made_up_layouts"]
    assert reads["true_chance"] < 8 and reads["made_up_chance"] < 4
    assert ignores["true_matches"] == 12 and ignores["made_up_followed"] == 0
    assert ignores["made_up_true_target"] == ignores["made_up_layouts"]
    assert ignores["made_up_no_pickup"] == 0 and ignores["made_up_chance_picked"] == ignores["made_up_chance"]
    assert f"| made-up mission | 0 of {ignores['made_up_layouts']} |" in grounding.probe_table(ignores)


@pytest.mark.slow
def test_mission_experiment_on_the_shipped_checkpoint(tmp_path):
    r = experiment_mission(SHIPPED, layouts=3, out=tmp_path / "m", device="cpu")
    assert r["layouts"] == 3 and 0 <= r["true_matches"] <= 3 and r["made_up_layouts"] <= 3
    assert "| true mission |" in (tmp_path / "m" / "results.md").read_text()
    again = experiment_mission(SHIPPED, layouts=3, out=tmp_path / "m", device="cpu")  # reported, not rerun
    assert {k: again[k] for k in r} == r
