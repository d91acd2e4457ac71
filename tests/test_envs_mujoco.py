"""MuJoCo adapter specifics: float32 observations, the LQR design, and experts far above random."""

from __future__ import annotations

import numpy as np
import pytest

from gato.envs import all_tasks, get_task
from gato.envs.mujoco import dlqr, double_pendulum_state, step_jacobians
from gato.rollout import RandomPolicy, run_episode

TASKS = all_tasks("mujoco")


@pytest.mark.parametrize("task", TASKS, ids=[t.name for t in TASKS])
def test_observation_is_the_simulator_state_in_float32(task):
    env = task.make()
    raw_space = env.unwrapped.observation_space
    assert env.observation_space.dtype == np.float32 and env.observation_space.shape == raw_space.shape
    np.testing.assert_array_equal(env.observation_space.low, raw_space.low.astype(np.float32))
    np.testing.assert_array_equal(env.observation_space.high, raw_space.high.astype(np.float32))
    obs, _ = env.reset(seed=3)
    obs, *_ = env.step(env.action_space.sample())
    assert obs.dtype == np.float32
    np.testing.assert_allclose(obs, env.unwrapped._get_obs(), rtol=1e-6, atol=1e-6)
    env.close()


def test_double_pendulum_state_from_observation():
    env = get_task("mujoco/inverted-double-pendulum").make()
    obs, _ = env.reset(seed=1)
    data = env.unwrapped.data
    np.testing.assert_allclose(double_pendulum_state(obs), np.concatenate([data.qpos, data.qvel]), atol=1e-6)
    env.close()


@pytest.mark.parametrize("name", ["mujoco/inverted-pendulum", "mujoco/inverted-double-pendulum"])
def test_lqr_stabilises_the_linearised_step(name):
    env = get_task(name).make()
    A, B = step_jacobians(env)
    assert np.max(np.abs(np.linalg.eigvals(A))) > 1  # upright is unstable on its own
    K = dlqr(A, B, np.eye(len(A)), np.eye(B.shape[1]))
    assert np.max(np.abs(np.linalg.eigvals(A - B @ K))) < 1
    env.close()


@pytest.mark.parametrize("name, expert_min, random_max", [
    ("mujoco/inverted-pendulum", 1000, 50),
    ("mujoco/inverted-double-pendulum", 9300, 200),  # the maximum is about 9360
    ("mujoco/reacher", -6, -30),
    ("mujoco/pusher", -50, -120),
    ("mujoco/swimmer", 200, 60),
])
def test_expert_far_above_random(name, expert_min, random_max):
    task = get_task(name)
    env = task.make()
    expert = [run_episode(task, env, task.make_expert(env), seed=s, record=False).ret for s in range(3)]
    rand = [run_episode(task, env, RandomPolicy(env), seed=s, record=False).ret for s in range(3)]
    env.close()
    assert np.mean(expert) >= expert_min, expert
    assert np.mean(rand) <= random_max, rand


@pytest.mark.parametrize("name", ["mujoco/pusher", "mujoco/swimmer"])
def test_stateful_expert_resets_between_episodes(name):
    task = get_task(name)
    env = task.make()
    expert = task.make_expert(env)
    returns = [run_episode(task, env, expert, seed=s, record=False).ret for s in (7, 8, 7)]
    env.close()
    assert returns[0] == returns[2] != returns[1]
