"""`gato eval` end to end on a small checkpoint: lock-step rollouts, results.json, references."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from gato.commands.data import collect
from gato.data.episode import TaskSpec
from gato.envs import get_task
from gato.commands.evaluate import evaluate, play
from gato.evaluation.evaluate import rollout
from gato.model import Gato
from gato.training.config import TrainConfig
from gato.training.trainer import Trainer

from conftest import SMALL

MODEL = dataclasses.replace(SMALL, context=128)  # trained on 128-token rows below


def test_rollout_runs_every_episode_once_with_its_own_seed():
    task = get_task("control/mountaincar")
    env = task.make()
    spec = TaskSpec(task.name, env.observation_space, env.action_space)
    eps = rollout(Gato(MODEL).eval(), task, spec, episodes=5, num_envs=2, seed=7)
    assert [e["seed"] for e in eps] == [7, 8, 9, 10, 11]
    assert all(e["length"] == 200 and e["return"] == -200.0 for e in eps)  # untrained: never reaches the flag


def test_eval_writes_results_with_normalised_scores(tmp_path, capsys):
    collect(("control/cartpole",), episodes=4, test_episodes=1, out=tmp_path / "data", progress=False)
    cfg = TrainConfig(steps=2, batch_size=2, context=128, data=str(tmp_path / "data"), warmup=1)
    trainer = Trainer(cfg, MODEL)
    trainer.fit(tmp_path / "run", progress=False)
    res = evaluate(tmp_path / "run", tasks=("control/cartpole", "control/acrobot"), episodes=3, envs=2,
                   out=tmp_path / "eval", data=tmp_path / "data")
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["version"] == 1 and saved["step"] == 2 and set(saved["tasks"]) == {"control/cartpole", "control/acrobot"}
    cp = saved["tasks"]["control/cartpole"]
    assert cp["episodes"] == 3 and len(cp["returns"]) == 3 and cp["prompt_tokens"] == 32
    assert saved["tasks"]["control/acrobot"]["prompt_tokens"] == 0  # no dataset for it: no prompt
    expected = (cp["mean"] - cp["random"]) / (cp["expert"] - cp["random"])
    assert np.isclose(cp["normalized"], expected)
    lo, hi = cp["normalized_ci"]  # over the task's episodes
    assert lo <= cp["normalized"] <= hi and cp["human_normalized"] is None
    assert set(saved["phases"]) == {"act_s", "env_s", "videos_s", "vision_language_s"} and saved["phases"]["act_s"] > 0
    assert saved["domains"]["control"]["tasks"] == 2
    assert len(saved["overall"]["curve"]["thresholds"]) == 101
    out = capsys.readouterr().out
    assert "control" in out and f"control/acrobot: no training episodes in {tmp_path / 'data'}, so no prompt" in out
    assert res["overall"]["tasks_normalized"] == 2
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| control | 2 |" in report and "figure5.png" in report and "control/acrobot" in report
    html = (tmp_path / "eval" / "report.html").read_text()
    assert "<img alt='Figure 5' src='figure5.png'>" in html and "<table" in html
    assert "<img alt='control/acrobot' src='videos/control-acrobot-seed100000.gif'>" in html
    assert (tmp_path / "eval" / "videos" / "control-cartpole-seed100000.gif").read_bytes()[:6] == b"GIF89a"
    png = (tmp_path / "eval" / "figure5.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000

    bare = evaluate(tmp_path / "run", tasks=("control/cartpole",), episodes=1, out=tmp_path / "bare", videos=0)
    assert bare["prompts"] is None and "no demonstration prompts: no --data, and" in capsys.readouterr().out

    played = play(tmp_path / "run", "control/cartpole", out=tmp_path / "play", seed=3)
    gif = (tmp_path / "play" / "control-cartpole-seed3.gif").read_bytes()
    assert gif[:6] == b"GIF89a" and played["steps"] >= 1


@pytest.mark.slow
def test_a_small_model_trained_on_mountaincar_scores_clearly_above_random(tmp_path):
    """The whole pipeline: expert data -> training -> `gato eval`. (About 2 minutes on 2 cores;
    measured: 150 steps reach -117.5, 102% of the expert, against -200 for random.)"""
    collect(("control/mountaincar",), episodes=20, test_episodes=1, out=tmp_path / "data", progress=False)
    cfg = TrainConfig(steps=150, batch_size=8, context=128, data=str(tmp_path / "data"), warmup=20, lr=3e-3,
                      checkpoint_every=10**6)
    Trainer(cfg, MODEL).fit(tmp_path / "run", progress=False)
    res = evaluate(tmp_path / "run", tasks=("control/mountaincar",), episodes=4, envs=4, out=tmp_path / "eval")
    assert res["tasks"]["control/mountaincar"]["normalized"] >= 0.5


SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "gato-tiny"
CHEAP = ("control/cartpole", "control/acrobot")


def test_eval_steps_all_episodes_of_a_task_together_by_default(tmp_path):
    res = evaluate(SHIPPED, tasks=("control/cartpole",), episodes=3, out=tmp_path / "eval", videos=0, vl=False,
                   progress=False)
    assert res["envs"] == 3 and len(res["tasks"]["control/cartpole"]["returns"]) == 3
    with pytest.raises(ValueError, match="envs"):
        evaluate(SHIPPED, tasks=("control/cartpole",), episodes=3, envs=-1, out=tmp_path / "eval2")


def test_eval_saves_each_task_and_reuses_it_only_under_the_same_settings(tmp_path, capsys):
    kw = dict(episodes=2, envs=2, out=tmp_path / "eval", videos=0, vl=False, progress=False)
    first = evaluate(SHIPPED, tasks=CHEAP, **kw)
    saved = tmp_path / "eval" / "tasks" / "control-acrobot.json"
    record = json.loads(saved.read_text())
    assert record["task"] == "control/acrobot" and record["settings"]["episodes"] == 2
    assert record["result"]["returns"] == first["tasks"]["control/acrobot"]["returns"]
    record["result"]["mean"] = 1234.5  # a marker: a rerun must take the saved result, not roll out again
    saved.write_text(json.dumps(record))
    again = evaluate(SHIPPED, tasks=CHEAP + ("control/mountaincar",), **kw)
    assert again["tasks"]["control/acrobot"]["mean"] == 1234.5
    assert again["tasks"]["control/cartpole"] == first["tasks"]["control/cartpole"]
    assert len(again["tasks"]["control/mountaincar"]["returns"]) == 2  # the new task was evaluated
    assert "(saved earlier)" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"results.json holds another evaluation \(episodes differ\)"):
        evaluate(SHIPPED, tasks=CHEAP, **(kw | {"episodes": 3}))
    (tmp_path / "eval" / "results.json").unlink()  # the saved tasks are checked too
    with pytest.raises(ValueError, match=r"control-cartpole.json: measured under other settings \(episodes differ\)"):
        evaluate(SHIPPED, tasks=CHEAP, **(kw | {"episodes": 3}))
    forced = evaluate(SHIPPED, tasks=CHEAP, force=True, **(kw | {"episodes": 3}))
    assert len(forced["tasks"]["control/acrobot"]["returns"]) == 3
    with pytest.raises(ValueError, match=r"another evaluation \(discrete_temperature differ\)"):
        evaluate(SHIPPED, tasks=CHEAP, **(kw | {"episodes": 3, "discrete_temperature": 0.0}))
    with pytest.raises(ValueError, match=r"--discrete-temperature must be a finite number >= 0"):
        evaluate(SHIPPED, tasks=CHEAP, **(kw | {"discrete_temperature": float("nan")}))


def test_eval_never_replaces_the_results_of_another_evaluation_unless_forced(tmp_path):
    kw = dict(tasks=("control/cartpole",), episodes=1, envs=1, out=tmp_path / "eval", videos=0, vl=False,
              progress=False)
    first = evaluate(SHIPPED, **kw)
    results = tmp_path / "eval" / "results.json"
    other = json.loads(results.read_text()) | {"weights_sha256": "0" * 64}  # as if another model had written it
    results.write_text(json.dumps(other))
    with pytest.raises(ValueError, match=r"results.json holds another evaluation \(weights_sha256 differ\)"):
        evaluate(SHIPPED, **kw)
    assert json.loads(results.read_text())["weights_sha256"] == "0" * 64  # untouched
    again = evaluate(SHIPPED, force=True, **kw)
    assert again["weights_sha256"] == first["weights_sha256"]


def test_eval_in_worker_processes_gives_the_same_scores(tmp_path):
    kw = dict(tasks=CHEAP, episodes=2, envs=2, videos=0, vl=False, progress=False)
    one = evaluate(SHIPPED, out=tmp_path / "one", **kw)
    two = evaluate(SHIPPED, out=tmp_path / "two", workers=2, **kw)
    assert list(two["tasks"]) == list(CHEAP)  # in the order asked, though scored most expensive first
    for name in CHEAP:
        assert two["tasks"][name]["returns"] == one["tasks"][name]["returns"]
    assert two["workers"] == 2 and two["weights_sha256"] == one["weights_sha256"]
