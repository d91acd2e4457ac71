"""Reference scores: each task's expert and uniformly random policy, measured by `gato scores`.

Evaluation normalises returns with them: (score - random) / (expert - random). They live in one
versioned JSON file shipped with the package (gato/envs/scores.json); re-measuring a task
replaces its entry and keeps the others.
"""

from __future__ import annotations

import hashlib
import json
import time
from importlib import resources
from pathlib import Path

import numpy as np

from gato.io import write_text

VERSION = 1
DEFAULT_FILE = Path(str(resources.files("gato.envs") / "scores.json"))


def scores_file_id(path: Path | None = None) -> dict:
    """Which reference scores a result was normalised with: the file's format version and hash."""
    path = Path(path or DEFAULT_FILE)
    return {"version": VERSION, "sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None}


def load_scores(path: Path | None = None) -> dict[str, dict]:
    """Task name -> {"expert": {mean, std, episodes, ...}, "random": {...}, "observation": str,
    "action": str}; empty if the file does not exist."""
    path = Path(path or DEFAULT_FILE)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid scores file ({e})") from e
    if data.get("version") != VERSION:
        raise ValueError(f"{path}: scores file version {data.get('version')!r}, expected {VERSION}")
    return data["tasks"]


def measure(args: tuple[str, str, int, int]) -> tuple[str, str, dict, dict]:
    from gato.envs import get_task

    name, who, episodes, seed = args
    try:
        return _measure_one(get_task(name), who, episodes, seed)
    except Exception as e:  # one broken task must not stop the others
        return name, who, {"error": f"{type(e).__name__}: {e}"[:500]}, {}


def _measure_one(task, who: str, episodes: int, seed: int) -> tuple[str, str, dict, dict]:
    from gato.rollout import RandomPolicy, run_episode
    from gato.tokenization.spaces import describe

    name = task.name
    env = task.make(sticky=True)  # evaluation conditions (sticky actions where the domain has them)
    policy = task.make_expert(env) if who == "expert" else RandomPolicy(env)
    rets, succ, failed, t0 = [], [], 0, time.perf_counter()
    for i in range(episodes):
        try:
            r = run_episode(task, env, policy, seed=seed + i, record=False)
        except Exception:  # as in collection, an episode the expert crashes on is skipped, counted
            if who != "expert":
                raise
            failed += 1
            policy = task.make_expert(env)
            continue
        rets.append(r.ret)
        succ.append(r.success)
    if not rets:
        raise RuntimeError(f"all {episodes} episodes failed")
    spaces = {"observation": describe(env.observation_space), "action": describe(env.action_space)}
    env.close()
    out = {"mean": float(np.mean(rets)), "std": float(np.std(rets)), "episodes": len(rets),
           "seconds": round(time.perf_counter() - t0, 1)}
    if failed:
        out["failed_episodes"] = failed
    if task.success:
        out["success_rate"] = float(np.mean([bool(s) for s in succ]))
    return name, who, out, spaces


def write_scores(path: Path, table: dict) -> None:
    write_text(path, json.dumps({"version": VERSION, "tasks": dict(sorted(table.items()))}, indent=1) + "\n")
