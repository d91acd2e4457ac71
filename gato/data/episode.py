"""The episode schema: what one task is, and one recorded episode of it.

Step i aligns observation i, action i (taken after seeing observation i) and reward i (received
after action i). The final observation (the one after the last action) is not a step, as in JAT's
datasets: it is kept apart, with how the episode ended, where the recorder knew them (Minari's
episodes hold both).
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
    actions: list[Any]  # the labels: what the expert did or would have done in each state
    rewards: np.ndarray = field(default=None)  # (T,) float32
    # The actions the environment really ran, where they differ from the labels (a learner's
    # action under DAgger); None: the labels were executed. Training feeds these as the history
    # and predicts the labels.
    executed: list[Any] | None = None
    # The observation after the last action, and whether a time limit (not the task) ended the
    # episode; None: not recorded (datasets of format version 1, prompts, DAgger rounds).
    final_observation: Any = None
    truncated: bool | None = None

    def __post_init__(self):
        if self.rewards is None:
            self.rewards = np.zeros(len(self.actions), np.float32)
        n = len(self.actions)
        if len(self.observations) != n or len(self.rewards) != n:
            raise ValueError(f"episode has {len(self.observations)} observations, {n} actions and "
                             f"{len(self.rewards)} rewards; they must be equal (the final observation is kept apart)")
        if n == 0:
            raise ValueError("episode has no steps")
        if self.executed is not None and len(self.executed) != n:
            raise ValueError(f"episode has {n} actions but {len(self.executed)} executed actions")

    def __len__(self) -> int:
        return len(self.actions)


def text_of(observation: Any) -> tuple[str, ...]:
    """The text an observation carries (a Dict's strings in key order: BabyAI's mission), so
    episodes can be grouped by what they were asked to do; () for observations without text."""
    if isinstance(observation, str):
        return (observation,)
    if isinstance(observation, dict):
        return tuple(v for _, v in sorted(observation.items()) if isinstance(v, str))
    return ()
