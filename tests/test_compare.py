"""`gato compare`: two evaluations task by task, paired by reset seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gato.commands.evaluate import compare
from gato.evaluation.compare import compare_tasks, load_evaluation
from gato.evaluation.scoring import EvalSettings, save_result


def _result(returns, domain="control"):
    r = np.asarray(returns, float)
    return {"domain": domain, "episodes": len(r), "mean": r.mean(), "std": r.std(), "returns": r.tolist(),
            "random": 0.0, "expert": 100.0, "normalized": r.mean() / 100}


def _evaluation(folder, tasks: dict, seed=100_000, finished=True):
    settings = EvalSettings("sha", 20, 20, seed, 0.0, "argmax", None)
    for name, returns in tasks.items():
        save_result(folder, name, settings, _result(returns))
    if finished:
        (folder / "results.json").write_text(json.dumps(
            {"seed": seed, "tasks": {n: _result(r) for n, r in tasks.items()}}))
    return folder


def test_pairing_by_seed_finds_a_small_gain_that_episode_spread_hides(tmp_path):
    """Episodes spread widely (the starting state matters) but B is 5 points better on every one
    of them: paired, that is a clear gain; unpaired (other seeds), it is inside the noise."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 100, 20)
    a = _evaluation(tmp_path / "a", {"t/gain": base, "t/same": base, "t/loss": base})
    b = _evaluation(tmp_path / "b", {"t/gain": base + 5, "t/same": base, "t/loss": base - 30})
    paired = compare_tasks(load_evaluation(a), load_evaluation(b))
    rows = paired["tasks"]
    assert paired["summary"]["paired"] and rows["t/gain"]["verdict"] == "up"
    assert rows["t/gain"]["delta"] == pytest.approx(0.05) and rows["t/gain"]["ci"] == pytest.approx([0.05, 0.05])
    assert rows["t/same"]["verdict"] == "=" and rows["t/loss"]["verdict"] == "down"
    assert paired["summary"]["up"] == 1 and paired["summary"]["down"] == 1
    other = _evaluation(tmp_path / "c", {"t/gain": base + 5}, seed=7)
    unpaired = compare_tasks(load_evaluation(a), load_evaluation(other))
    assert not unpaired["summary"]["paired"] and unpaired["tasks"]["t/gain"]["verdict"] == "="
    lo, hi = unpaired["tasks"]["t/gain"]["ci"]
    assert lo < 0 < hi


def test_sides_with_different_episode_counts_compare_the_episodes_both_played(tmp_path):
    """A played 20 episodes, B the first 3 of them: every column is over those 3, and the table says so."""
    base = np.linspace(0, 100, 20)
    a = _evaluation(tmp_path / "a", {"t/x": base, "t/y": base})
    b = _evaluation(tmp_path / "b", {"t/x": base[:3] + 10, "t/y": base + 10})
    result = compare_tasks(load_evaluation(a), load_evaluation(b))
    x = result["tasks"]["t/x"]
    assert x["a"] == pytest.approx(base[:3].mean() / 100) and x["b"] - x["a"] == pytest.approx(x["delta"])
    assert x["episodes"] == [20, 3] and x["compared"] == 3 and result["tasks"]["t/y"]["compared"] == 20
    from gato.evaluation.compare import comparison_table
    assert "different numbers of episodes of 1 task (t/x (20 vs 3))" in comparison_table(result)


def test_an_unfinished_evaluation_compares_on_the_tasks_saved_so_far(tmp_path):
    a = _evaluation(tmp_path / "a", {"t/x": [10, 20], "t/y": [30, 40]})
    running = _evaluation(tmp_path / "b", {"t/y": [50, 60]}, finished=False)
    assert not (running / "results.json").exists()
    out = compare(a / "results.json", running, out=tmp_path / "cmp.md")
    assert list(out["tasks"]) == ["t/y"] and out["tasks"]["t/y"]["delta"] == pytest.approx(0.2)
    assert "t/y" in (tmp_path / "cmp.md").read_text() and (tmp_path / "cmp.json").exists()
    with pytest.raises(ValueError, match="cmp.md exists; pass --force"):
        compare(a, running, out=tmp_path / "cmp.md")
    compare(a, running, out=tmp_path / "cmp.md", force=True)


def test_bad_comparisons_are_named(tmp_path):
    a = _evaluation(tmp_path / "a", {"t/x": [10, 20]})
    b = _evaluation(tmp_path / "b", {"t/z": [10, 20]})
    with pytest.raises(ValueError, match="no task in common"):
        compare(a, b)
    (tmp_path / "b" / "results.json").unlink()
    (tmp_path / "b" / "tasks" / "t-z.json").write_text('{"task": "t/z"}')
    with pytest.raises(ValueError, match="t-z.json: not a task result"):
        compare(a, b)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty is not an evaluation"):
        compare(a, tmp_path / "empty")


def test_compare_from_the_command_line(capsys, tmp_path):
    from gato.cli import main

    base = np.arange(20.0)
    a = _evaluation(tmp_path / "a", {"t/x": base})
    b = _evaluation(tmp_path / "b", {"t/x": base + 10})
    main(["compare", str(a), str(b)])
    out = capsys.readouterr().out
    assert "| t/x | 9.5% | 19.5% | +10.0 (+10.0 to +10.0) | up |" in out and "paired" in out
    with pytest.raises(SystemExit) as stop:
        main(["compare", str(a), str(tmp_path / "nothing")])
    assert stop.value.code == 2 and "nothing is not an evaluation" in capsys.readouterr().err
