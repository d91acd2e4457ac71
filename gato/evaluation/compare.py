"""Did a change make the agent better? Two evaluations of the same tasks, task by task.

`gato eval` starts episode i of every task from reset seed SEED + i, whatever the checkpoint,
so two evaluations with the same seed play the same starting states: the difference of their
normalised returns is paired episode by episode, and its bootstrap interval is much narrower
than the two separate intervals suggest. Evaluations with different seeds are compared
unpaired. Either side may be a finished evaluation (its results.json) or one still running or
stopped (the tasks saved so far in OUT/tasks/).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gato.evaluation.metrics import REPS, difference_ci, episode_scores
from gato.io import read_json


def load_evaluation(path: Path) -> dict:
    """{"seed": int | None, "tasks": {name: result}} of `gato eval`'s output: a results.json, a
    folder holding one, or a folder whose tasks/ holds the per-task files saved so far."""
    path = Path(path)
    if path.is_file():
        results = read_json(path, "results file")
        return {"seed": results.get("seed"), "tasks": results.get("tasks", {})}
    if (path / "results.json").exists():
        return load_evaluation(path / "results.json")
    files = sorted((path / "tasks").glob("*.json")) if path.is_dir() else []
    if not files:
        raise ValueError(f"{path} is not an evaluation: no results.json and no tasks/*.json (made by `gato eval`)")
    tasks, seeds = {}, set()
    for f in files:
        saved = read_json(f, "task result")
        if not (isinstance(saved, dict) and isinstance(saved.get("result"), dict)
                and isinstance(saved.get("settings"), dict) and "task" in saved):
            raise ValueError(f"{f}: not a task result of `gato eval` (task, settings, result)")
        tasks[saved["task"]] = saved["result"]
        seeds.add(saved["settings"].get("seed"))
    return {"seed": seeds.pop() if len(seeds) == 1 else None, "tasks": tasks}


def compare_tasks(a: dict, b: dict, seed: int = 0) -> dict:
    """Per task in both evaluations: normalised means, B - A, and a 95% bootstrap interval of the
    difference (`metrics.difference_ci`, rliable's bootstrap as every interval of the report),
    paired episode by episode when both used the same seed. A change is called up or down only
    when its interval excludes 0."""
    paired = a["seed"] is not None and a["seed"] == b["seed"]
    rows = {}
    for name in [t for t in a["tasks"] if t in b["tasks"]]:
        sa, sb = (episode_scores(t.get("returns") or [], t.get("random"), t.get("expert"))
                  for t in (a["tasks"][name], b["tasks"][name]))
        if sa is None or sb is None:
            continue
        delta, (lo, hi) = difference_ci(sa, sb, paired, seed)
        n = min(len(sa), len(sb))  # both columns over the episodes compared, so B - A is their difference
        rows[name] = {"a": float(np.mean(sa[:n])), "b": float(np.mean(sb[:n])), "delta": delta, "ci": [lo, hi],
                      "episodes": [len(sa), len(sb)], "compared": n,
                      "verdict": "up" if lo > 0 else "down" if hi < 0 else "="}
    if not rows:
        raise ValueError("the two evaluations have no task in common with scores to compare")
    n = len(rows)
    summary = {"tasks": n, "paired": paired,
               "mean_a": float(np.mean([r["a"] for r in rows.values()])),
               "mean_b": float(np.mean([r["b"] for r in rows.values()])),
               "above_50_a": sum(r["a"] >= 0.5 for r in rows.values()),
               "above_50_b": sum(r["b"] >= 0.5 for r in rows.values()),
               "up": sum(r["verdict"] == "up" for r in rows.values()),
               "down": sum(r["verdict"] == "down" for r in rows.values())}
    return {"tasks": rows, "summary": summary}


def comparison_table(result: dict, names: tuple[str, str] = ("A", "B")) -> str:
    """Markdown: which evaluation is A and which B, one row per task, then the means and counts."""
    lines = [f"A: {names[0]}  \nB: {names[1]}", "", "| task | A | B | B - A (95% interval) | |", "|---|---|---|---|---|"]
    for name, r in result["tasks"].items():
        lo, hi = r["ci"]
        lines.append(f"| {name} | {100 * r['a']:.1f}% | {100 * r['b']:.1f}% | {100 * r['delta']:+.1f} "
                     f"({100 * lo:+.1f} to {100 * hi:+.1f}) | {r['verdict']} |")
    s = result["summary"]
    lines.append(f"| **mean of {s['tasks']} / tasks >= 50%** | {100 * s['mean_a']:.1f}% / {s['above_50_a']} | "
                 f"{100 * s['mean_b']:.1f}% / {s['above_50_b']} | {100 * (s['mean_b'] - s['mean_a']):+.1f} | "
                 f"{s['up']} up, {s['down']} down |")
    how = ("paired: the same reset seeds, episode by episode" if s["paired"]
           else "unpaired: the evaluations used different seeds")
    uneven = [f"{name} ({r['episodes'][0]} vs {r['episodes'][1]})" for name, r in result["tasks"].items()
              if r["episodes"][0] != r["episodes"][1]]
    tasks = f"{len(uneven)} task{'s' * (len(uneven) > 1)}"
    note = ("" if not uneven else f"\nA and B played different numbers of episodes of {tasks} ({', '.join(uneven)}); "
            f"their rows compare the first episodes both played, only.\n")
    return "\n".join(lines) + f"\n\nIntervals: {REPS} bootstrap resamples of each task's episodes ({how}).\n" + note
