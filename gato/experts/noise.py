"""Noise-injected demonstrations (DART, Laskey et al. 2017): the expert acts with noise, the
label stays the expert's clean action.

A behaviour-cloned policy drifts into states an exact expert never visits. Executing a
perturbed action while recording what the expert wanted there shows the learner how the
expert recovers. Continuous actions get Gaussian noise scaled to each dimension's half-range
(then clipped to the space); discrete actions are replaced by a uniformly random one with
probability `noise`. `DEFAULT_NOISE` holds the per-domain scales `gato collect --noise auto`
uses; docs/quality.md gives the measurement behind them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

# Per domain: the Gaussian scale (fraction of the half-range) for continuous actions, or the
# probability of a random action for discrete ones. 0 where noise costs the expert its task.
DEFAULT_NOISE = {"atari": 0.0, "babyai": 0.1, "box2d": 0.1, "control": 0.1, "dmc": 0.1,
                 "metaworld": 0.1, "mujoco": 0.1}


@dataclass(frozen=True)
class LabelledAction:
    """What a rollout executes, and the action it records as the demonstration's label."""

    execute: Any
    label: Any


def check_noise(noise: float, space: gym.Space, task: str = "") -> None:
    """A clear error for a noise level outside [0, 1] or an action space it cannot perturb."""
    where = f"task {task}: " if task else ""
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"{where}noise must be in [0, 1] (a fraction of the action half-range, or a "
                         f"probability for discrete actions), got {noise}")
    if noise and not isinstance(space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete)):
        raise ValueError(f"{where}noise applies to Box, Discrete and MultiDiscrete action spaces, "
                         f"not {type(space).__name__}")
    if noise and isinstance(space, gym.spaces.Box) and not (np.isfinite(space.low).all()
                                                            and np.isfinite(space.high).all()):
        raise ValueError(f"{where}noise needs a bounded action space (its scale is relative to the "
                         f"range), got {space}")


def perturb(space: gym.Space, action: Any, noise: float, rng: np.random.Generator) -> Any:
    """`action` with noise of level `noise`, still inside `space`."""
    if isinstance(space, gym.spaces.Box):
        a = np.asarray(action, space.dtype)
        half = (space.high - space.low) / 2
        return np.clip(a + rng.normal(size=a.shape) * noise * half, space.low, space.high).astype(space.dtype)
    if isinstance(space, gym.spaces.Discrete):
        return int(space.start + rng.integers(space.n)) if rng.random() < noise else action
    if isinstance(space, gym.spaces.MultiDiscrete):
        a = np.array(action, space.dtype)
        swap = rng.random(a.shape) < noise
        a[swap] = (space.start + (rng.random(a.shape) * space.nvec).astype(space.dtype))[swap]
        return a
    raise ValueError(f"noise cannot perturb a {type(space).__name__} action")


class NoisyExpert:
    """Wraps an expert: executes a perturbed action, labels the step with the clean one.

    The noise generator is reseeded with the episode's seed, so a collection is reproducible."""

    def __init__(self, expert, space: gym.Space, noise: float):
        check_noise(noise, space)
        self.expert, self.space, self.noise = expert, space, noise
        self.rng = np.random.default_rng()

    def reset(self, seed: int | None = None) -> None:
        self.expert.reset(seed)
        self.rng = np.random.default_rng(None if seed is None else [seed, 0xDA27])

    def __call__(self, observation) -> LabelledAction:
        clean = self.expert(observation)
        return LabelledAction(perturb(self.space, clean, self.noise, self.rng), clean)

    def taken(self, action) -> None:
        """Tells an expert that plans (the BabyAI bot) which action was really executed."""
        if hasattr(self.expert, "taken"):
            self.expert.taken(action)
