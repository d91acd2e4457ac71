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


def check_observation(task: Task, space: gym.Space, obs, step: int) -> None:
    if not space.contains(obs):
        raise ValueError(f"{task.name}: observation at step {step} is outside the observation space "
                         f"{space}: {_short(obs)}")


def _short(x) -> str:
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k!r}: {_short(v)}" for k, v in x.items()) + "}"
    a = np.asarray(x)
    return f"array(shape={a.shape}, dtype={a.dtype})" if a.size > 8 else repr(x)


def run_episode(task: Task, env: gym.Env, policy, seed: int, max_steps: int | None = None,
                record: bool = True) -> EpisodeResult:
    """Reset with `seed`, act until the episode ends or `max_steps` (default: the task's cap)."""
    cap = max_steps or task.max_steps
    obs, _ = env.reset(seed=seed)
    policy.reset(seed)
    observations, actions, rewards = [], [], []
    success, truncated = None, False
    for t in range(cap):
        check_observation(task, env.observation_space, obs, t)
        action = policy(obs)
        next_obs, reward, terminated, trunc, info = env.step(action)
        if record:
            observations.append(obs)
            actions.append(action)
        rewards.append(float(reward))
        if "success" in info:
            success = bool(success) or bool(info["success"])
        obs = next_obs
        if terminated or trunc:
            truncated = bool(trunc and not terminated)
            break
    else:
        truncated = True
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
