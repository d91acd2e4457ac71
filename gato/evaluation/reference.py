"""Measuring reference scores (`gato scores`): a task's expert and a uniformly random policy over
episodes through the one rollout loop, under evaluation conditions (gato/envs/scores.py keeps
the file they go to)."""

from __future__ import annotations

import time

import numpy as np

from gato.envs import get_task
from gato.rollout import RandomPolicy, run_episode
from gato.tokenization.spaces import describe


def measure(args: tuple[str, str, int, int]) -> tuple[str, str, dict, dict]:
    """(task, "expert" or "random", episodes, first seed) -> its scores; an error entry, not an
    exception, for a task that fails (one broken task must not stop the others)."""
    name, who, episodes, seed = args
    try:
        return _measure_one(get_task(name), who, episodes, seed)
    except Exception as e:  # one broken task must not stop the others
        return name, who, {"error": f"{type(e).__name__}: {e}"[:500]}, {}


def _measure_one(task, who: str, episodes: int, seed: int) -> tuple[str, str, dict, dict]:
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
