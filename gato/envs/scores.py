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


def modalities(space) -> str:
    """A short description of what a space holds, e.g. 'discrete 148 + text' or 'image 64x64x3'."""
    from gymnasium import spaces as S

    from gato.tokenization.spaces import is_integer_box, is_image_space

    parts: dict[str, int] = {}
    images: list[str] = []

    def walk(sp):
        if isinstance(sp, S.Dict):
            for k in sorted(sp.spaces):
                walk(sp.spaces[k])
        elif isinstance(sp, S.Tuple):
            for s in sp.spaces:
                walk(s)
        elif isinstance(sp, S.Text):
            parts["text"] = 0
        elif is_image_space(sp):
            images.append("x".join(map(str, sp.shape)))
        elif isinstance(sp, S.Discrete) or isinstance(sp, (S.MultiDiscrete, S.MultiBinary)) or (
                isinstance(sp, S.Box) and is_integer_box(sp)):
            parts["discrete"] = parts.get("discrete", 0) + int(np.prod(getattr(sp, "shape", ()) or (1,)))
        else:
            parts["continuous"] = parts.get("continuous", 0) + int(np.prod(sp.shape))

    walk(space)
    out = [f"image {i}" for i in images] + [f"{k} {n}" if n else k for k, n in parts.items()]
    return " + ".join(out)


def measure(args: tuple[str, str, int, int]) -> tuple[str, str, dict, dict]:
    from gato.envs import get_task

    name, who, episodes, seed = args
    try:
        return _measure_one(get_task(name), who, episodes, seed)
    except Exception as e:  # one broken task must not stop the others
        return name, who, {"error": f"{type(e).__name__}: {e}"[:500]}, {}


def _measure_one(task, who: str, episodes: int, seed: int) -> tuple[str, str, dict, dict]:
    from gato.rollout import RandomPolicy, run_episode

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
    spaces = {"observation": modalities(env.observation_space), "action": modalities(env.action_space)}
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
