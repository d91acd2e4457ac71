"""Trained experts whose small weights ship with the package (gato/experts/weights/).

The MuJoCo locomotion experts are linear policies trained with Augmented Random Search
(`gato.experts.ars`, reproducible with `gato experts train-ars`). They load offline and act
deterministically.
"""

from __future__ import annotations

from importlib import resources

import gymnasium as gym
import numpy as np

from gato.experts.ars import load_weights


def weights_file(name: str):
    """The committed weights file `name` (e.g. "hopper.npz")."""
    return resources.files(__package__).joinpath("weights", name)


class ARSExpert:
    """a = clip(M @ ((obs - mean) / std), low, high) with M, mean, std from committed ARS weights."""

    def __init__(self, env: gym.Env, weights: str):
        path = weights_file(weights)
        with resources.as_file(path) as file:
            self.policy, self.meta = load_weights(file)
        spec = env.unwrapped.spec
        if spec is not None and self.meta["env_id"] != spec.id:
            raise ValueError(f"{path} holds an expert for {self.meta['env_id']}, not {spec.id}")
        expected = (env.action_space.shape[0], env.observation_space.shape[0])
        if self.policy.M.shape != expected:
            raise ValueError(f"{path}: M has shape {self.policy.M.shape}, the env needs {expected}")
        self.low, self.high = env.action_space.low, env.action_space.high

    def reset(self, seed=None):
        pass

    def __call__(self, obs):
        return self.policy.act(obs, self.low, self.high).astype(np.float32)
