"""The episode schema: what one task is, and one recorded episode of it.

Step i aligns observation i, action i (taken after seeing observation i) and reward i (received
after action i). The final observation is not stored, as in JAT's datasets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces


@dataclass(frozen=True)
class TaskSpec:
    """A task: its registry name and its Gymnasium spaces."""

    name: str
    observation_space: spaces.Space
    action_space: spaces.Space


@dataclass
class Episode:
    observations: list[Any]
    actions: list[Any]
    rewards: np.ndarray = field(default=None)  # (T,) float32

    def __post_init__(self):
        if self.rewards is None:
            self.rewards = np.zeros(len(self.actions), np.float32)
        n = len(self.actions)
        if len(self.observations) != n or len(self.rewards) != n:
            raise ValueError(f"episode has {len(self.observations)} observations, {n} actions and "
                             f"{len(self.rewards)} rewards; they must be equal (final observation not stored)")
        if n == 0:
            raise ValueError("episode has no steps")

    def __len__(self) -> int:
        return len(self.actions)
