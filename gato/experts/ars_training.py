"""The ARS V2-t training recipe (gato/experts/ars.py describes the method): rollouts through the
one environment loop (gato.rollout), in worker processes, deterministic whatever their number."""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np

from gato.envs.registry import Task
from gato.experts.ars import ENV_KWARGS, EVAL_SEED, PRESETS, ARSConfig, LinearPolicy, RunningStat, save_weights
from gato.rollout import run_episode


class _Acting:
    """A LinearPolicy as a policy of the one rollout loop (gato.rollout)."""

    def __init__(self, policy: LinearPolicy, space: gym.spaces.Box):
        self.policy, self.low, self.high = policy, space.low, space.high

    def reset(self, seed: int | None = None) -> None:
        pass

    def __call__(self, observation):
        return self.policy.act(observation, self.low, self.high)


def rollout(env: gym.Env, policy: LinearPolicy, horizon: int, shift: float, seed: int):
    """One episode: (return with `shift` subtracted per step, steps, (n, mean, m2) of its states)."""
    task = Task(f"ars/{env.spec.id if env.spec else type(env).__name__}", make_env=lambda **_: env,
                make_expert=lambda e: None, expert_kind="trained", max_steps=horizon)
    ep = run_episode(task, env, _Acting(policy, env.action_space), seed=int(seed)).episode
    total = float(np.sum(ep.rewards, dtype=np.float64)) - shift * len(ep.rewards)
    s = np.asarray(ep.observations, np.float64)
    mean = s.mean(0)
    return total, len(s), (len(s), mean, ((s - mean) ** 2).sum(0))


_ENVS: dict[str, gym.Env] = {}  # one environment per env id and process (no wrappers: horizon is ours)


def _rollout_job(job):
    env_id, policy, horizon, shift, seed = job
    if env_id not in _ENVS:
        _ENVS[env_id] = gym.make(env_id, **ENV_KWARGS.get(env_id, {})).unwrapped
    return rollout(_ENVS[env_id], policy, horizon, shift, seed)


def evaluate(env_id: str, policy: LinearPolicy, config: ARSConfig, map_fn=map) -> tuple[float, int]:
    """Mean true return over `config.eval_episodes` fixed seeds, and the steps it took."""
    jobs = [(env_id, policy, config.horizon, 0.0, EVAL_SEED + k) for k in range(config.eval_episodes)]
    results = list(map_fn(_rollout_job, jobs))
    return float(np.mean([r[0] for r in results])), sum(r[1] for r in results)


def train_ars(env_id: str, iterations: int, config: ARSConfig | None = None, seed: int = 0,
              workers: int = 1, out: Path | None = None, log=print) -> tuple[LinearPolicy, dict]:
    """Train a linear policy with ARS V2-t; return the best evaluated policy and its metadata.

    `config` defaults to the env's preset (PRESETS). With `out`, every new best is saved there."""
    config = config or PRESETS.get(env_id, ARSConfig())
    env = gym.make(env_id, **ENV_KWARGS.get(env_id, {}))
    n_obs, n_act = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    rng = np.random.default_rng(seed)
    M, stat = np.zeros((n_act, n_obs)), RunningStat(n_obs)
    best, best_meta, steps, start = None, {"eval_return": -np.inf}, 0, time.time()
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    map_fn = pool.map if pool else map
    try:
        for it in range(1, iterations + 1):
            mean, std = stat.mean.copy(), stat.std
            deltas = rng.standard_normal((config.directions, n_act, n_obs))
            seeds = rng.integers(2 ** 31, size=config.directions)
            jobs = [(env_id, LinearPolicy(M + sign * config.noise * d, mean, std), config.horizon, config.shift, s)
                    for d, s in zip(deltas, seeds) for sign in (1, -1)]
            results = list(map_fn(_rollout_job, jobs))
            for _, n, batch in results:
                stat.merge(*batch)
                steps += n
            r = np.array([res[0] for res in results]).reshape(config.directions, 2)
            keep = np.argsort(-r.max(1), kind="stable")[:config.top]
            sigma = r[keep].std() or 1.0
            step = np.einsum("k,kij->ij", r[keep, 0] - r[keep, 1], deltas[keep])
            M = M + config.step_size / (config.top * sigma) * step
            if it % config.eval_every == 0 or it == iterations:
                policy = LinearPolicy(M.copy(), stat.mean.copy(), stat.std)
                ret, _ = evaluate(env_id, policy, config, map_fn)
                log(f"{env_id} it {it} steps {steps} {time.time() - start:.0f}s train {r.mean():.1f} eval {ret:.1f}")
                if ret > best_meta["eval_return"]:
                    best = policy
                    best_meta = {"eval_return": ret, "iterations": it, "env_steps": steps, "seed": seed,
                                 "seconds": round(time.time() - start, 1)}
                    if out is not None:
                        save_weights(out, best, env_id, config, **best_meta)
    finally:
        if pool:
            pool.shutdown()
    return best, best_meta
