"""One episode of a policy in a task's environment, recorded as an `Episode`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from gato.data.episode import Episode
from gato.envs.registry import Task


@dataclass
class EpisodeResult:
    episode: Episode
    ret: float
    length: int
    success: bool | None  # None where the task defines no success
    truncated: bool  # stopped by a time limit, not by the task


class RandomPolicy:
    """Uniformly random actions from the action space (the paper's 'random' reference)."""

    def __init__(self, env: gym.Env):
        self.space = env.action_space

    def reset(self, seed: int | None = None) -> None:
        self.space.seed(seed)

    def __call__(self, observation):
        return self.space.sample()


def check_observations(task: Task, space: gym.Space, observations: list) -> None:
    """Every observation of an episode is inside `space`; else an error naming the task and the
    first bad step. Box and Discrete leaves are checked for the whole episode at once."""
    bad = _first_outside(space, observations)
    if bad is not None:
        raise ValueError(f"{task.name}: observation at step {bad} is outside the observation space "
                         f"{space}: {_short(observations[bad])}")


def _first_outside(space: gym.Space, values: list) -> int | None:
    if isinstance(space, gym.spaces.Dict):
        if not all(isinstance(v, dict) and v.keys() == space.spaces.keys() for v in values):
            return next(i for i, v in enumerate(values) if not isinstance(v, dict) or v.keys() != space.spaces.keys())
        found = [_first_outside(sub, [v[k] for v in values]) for k, sub in space.spaces.items()]
        return min((f for f in found if f is not None), default=None)
    if isinstance(space, (gym.spaces.Box, gym.spaces.Discrete)):
        try:
            arr = np.asarray(values)  # (T, *shape); one call, not one per step
        except ValueError:  # ragged shapes
            arr = None
        if arr is not None and arr.shape == (len(values), *space.shape) and np.can_cast(arr.dtype, space.dtype):
            if isinstance(space, gym.spaces.Discrete):
                ok = (arr >= space.start) & (arr < space.start + space.n)
            else:
                ok = (arr >= space.low) & (arr <= space.high)
            ok = ok.reshape(len(values), -1).all(axis=1)
            return None if ok.all() else int(np.argmin(ok))
    return next((i for i, v in enumerate(values) if not space.contains(v)), None)


def _short(x) -> str:
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k!r}: {_short(v)}" for k, v in x.items()) + "}"
    a = np.asarray(x)
    return f"array(shape={a.shape}, dtype={a.dtype})" if a.size > 8 else repr(x)


def run_episode(task: Task, env: gym.Env, policy, seed: int, max_steps: int | None = None,
                record: bool = True) -> EpisodeResult:
    """Reset with `seed`, act until the episode ends or `max_steps` (default: the task's cap).

    Observations are checked against the space when the episode ends (an observation outside
    it is an error naming the task and step), so the check costs little per step. With
    `record=False` only the return, length and success are kept."""
    cap = max_steps or task.max_steps
    obs, _ = env.reset(seed=seed)
    policy.reset(seed)
    observations, actions, rewards = [], [], []
    success, truncated = None, False
    try:
        for _ in range(cap):
            action = policy(obs)
            observations.append(obs)
            actions.append(action)
            obs, reward, terminated, trunc, info = env.step(action)
            rewards.append(float(reward))
            if "success" in info:
                success = bool(success) or bool(info["success"])
            if terminated or trunc:
                truncated = bool(trunc and not terminated)
                break
        else:
            truncated = True
    except Exception:
        check_observations(task, env.observation_space, observations)  # a bad observation explains it
        raise
    check_observations(task, env.observation_space, observations)
    if task.success and success is None:
        success = False
    rew = np.asarray(rewards, np.float32)
    episode = Episode(observations, actions, rew) if record else None
    return EpisodeResult(episode, float(rew.sum()), len(rewards), success, truncated)


def parallel_map(fn: Callable, jobs: Iterable, workers: int) -> Iterator:
    """fn over jobs, in order: in this process for one worker, else in a process pool (each
    worker keeps its own environments between jobs)."""
    if workers <= 1:
        yield from map(fn, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fn, jobs)
