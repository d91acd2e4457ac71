"""Augmented Random Search (ARS V2-t, Mania et al. 2018): linear MuJoCo locomotion experts.

This module holds the policy, its running statistics and its weights files (what the MuJoCo
tasks load); the training recipe is gato/experts/ars_training.py (it runs the one rollout loop,
a layer above the tasks). The policy is a = clip(M @ ((obs - mean) / std), low, high) with M
initialised to zero and (mean, std) running statistics of every state visited in training.
Each iteration draws N Gaussian directions, evaluates M +/- nu * delta (one episode each, the
same reset seed for both signs), keeps the b directions with the best max(r+, r-) and steps

    M += alpha / (b * sigma_R) * sum_k (r+_k - r-_k) delta_k,   sigma_R = std of the 2b returns.

Rollouts use the statistics frozen at the start of the iteration; all their states update them
afterwards (merged in a fixed order), so training is deterministic given the seed whatever the
number of workers. For Hopper, Walker2d and Ant the per-step alive bonus is subtracted from the
training reward, as in the paper; evaluations use the true reward. Every `eval_every` iterations
the policy is evaluated and, when it is the best so far, written atomically to the weights file
(.npz, no pickle), so a run can be stopped at any time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gato.io import atomic_write


@dataclass(frozen=True)
class ARSConfig:
    step_size: float = 0.02
    """alpha: the step size of the update."""
    noise: float = 0.03
    """nu: the standard deviation of the exploration noise added to M."""
    directions: int = 8
    """N: directions sampled per iteration (2N episodes)."""
    top: int = 4
    """b: best directions kept for the update (b <= N)."""
    shift: float = 0.0
    """subtracted from every training reward (the alive bonus); evaluation uses the true reward."""
    horizon: int = 1000
    """episode cap in steps, for training and evaluation."""
    eval_every: int = 10
    """iterations between evaluations (and checkpoints)."""
    eval_episodes: int = 10
    """episodes per evaluation, on fixed seeds independent of training."""


# Table 9 of Mania et al. (V2-t, tuned on the v1 environments).
PRESETS: dict[str, ARSConfig] = {
    "Hopper-v5": ARSConfig(step_size=0.01, noise=0.025, directions=8, top=4, shift=1.0),
    "HalfCheetah-v5": ARSConfig(step_size=0.02, noise=0.03, directions=32, top=4),
    "Walker2d-v5": ARSConfig(step_size=0.025, noise=0.01, directions=40, top=30, shift=1.0),
    "Ant-v5": ARSConfig(step_size=0.015, noise=0.025, directions=60, top=20, shift=1.0),
}
# Ant without the 78 external contact forces (mostly zeros; 27 observations instead of 105):
# ARS learns faster on fewer inputs and a Gato timestep stays short. The registered task matches.
ENV_KWARGS: dict[str, dict] = {"Ant-v5": {"include_cfrc_ext_in_observation": False}}
EVAL_SEED = 1_000_000  # evaluation episode k resets with EVAL_SEED + k


@dataclass
class LinearPolicy:
    """a = clip(M @ ((obs - mean) / std), low, high)."""

    M: np.ndarray  # (action dim, observation dim)
    mean: np.ndarray
    std: np.ndarray

    def act(self, obs, low, high) -> np.ndarray:
        return np.clip(self.M @ ((np.asarray(obs, np.float64) - self.mean) / self.std), low, high)


class RunningStat:
    """Count, mean and sum of squared deviations of the states seen, merged batch by batch."""

    def __init__(self, dim: int):
        self.n, self.mean, self.m2 = 0, np.zeros(dim), np.zeros(dim)

    def merge(self, n: int, mean: np.ndarray, m2: np.ndarray) -> None:
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta ** 2 * self.n * n / total
        self.n = total

    @property
    def std(self) -> np.ndarray:
        if self.n < 2:
            return np.ones_like(self.mean)
        std = np.sqrt(self.m2 / (self.n - 1))
        return np.where(std < 1e-8, 1.0, std)  # constant components: left as they are


def save_weights(path: Path, policy: LinearPolicy, env_id: str, config: ARSConfig, **meta) -> None:
    """Write the policy and its provenance atomically (a temporary file, then a rename)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add .npz to a path
            np.savez(f, M=policy.M, mean=policy.mean, std=policy.std, env_id=np.array(env_id),
                     config=np.array(json.dumps(asdict(config))), **{k: np.array(v) for k, v in meta.items()})

    atomic_write(path, write)


def load_weights(path) -> tuple[LinearPolicy, dict]:
    """The policy in a weights file and its metadata; a clear error naming the file otherwise."""
    try:
        with np.load(path, allow_pickle=False) as data:
            policy = LinearPolicy(data["M"], data["mean"], data["std"])
            meta = {k: data[k].item() for k in data.files if k not in ("M", "mean", "std")}
    except FileNotFoundError:
        raise FileNotFoundError(f"ARS weights file not found: {path}") from None
    except Exception as e:
        raise ValueError(f"ARS weights file {path} is not readable ({type(e).__name__}: {e})") from e
    n_obs = policy.M.shape[-1]
    if policy.M.ndim != 2 or policy.mean.shape != (n_obs,) or policy.std.shape != (n_obs,):
        raise ValueError(f"ARS weights file {path}: M {policy.M.shape} does not match mean/std")
    meta["config"] = json.loads(meta["config"])
    return policy, meta
