"""DeepMind Control Suite adapter: observation mapping, seeding, time limit, rendering, experts."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dm_control")

from gato.envs import get_task
from gato.envs.dmc import DMCEnv
from gato.rollout import RandomPolicy, run_episode


def test_matches_dm_control_with_the_same_seed():
    """Observations and rewards are the suite's (as float32) for the same seed and actions."""
    # Imported after gato.envs.dmc, which chooses the rendering backend.
    from dm_control import suite

    env, ref = DMCEnv("reacher", "hard"), suite.load("reacher", "hard", task_kwargs={"random": 7})
    obs, _ = env.reset(seed=7)
    ts = ref.reset()
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert obs.keys() == ts.observation.keys()
        for k, v in ts.observation.items():
            np.testing.assert_array_equal(obs[k], np.asarray(v, np.float32))
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        obs, reward, *_ = env.step(action)
        ts = ref.step(action)
        assert reward == pytest.approx(ts.reward)


def test_scalar_observations_become_shape_1():
    env = DMCEnv("finger", "turn_easy")  # 'dist_to_target' is a scalar in the suite
    assert env.observation_space["dist_to_target"].shape == (1,)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (2,) and env.action_space.dtype == np.float32


def test_reset_seed_is_deterministic():
    env = get_task("dmc/cartpole-swingup").make()

    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        out = [obs["position"]]
        for a in np.linspace(-1, 1, 10):
            out.append(env.step(np.array([a], np.float32))[0]["position"])
        return np.stack(out)

    first = rollout(3)
    rollout(4)
    np.testing.assert_array_equal(rollout(3), first)
    assert not np.array_equal(rollout(4)[0], first[0])


def test_time_limit_truncates_at_1000_steps():
    task = get_task("dmc/point_mass-easy")
    env = task.make()
    env.reset(seed=0)
    zero = np.zeros(2, np.float32)
    for t in range(1000):
        _, _, terminated, truncated, _ = env.step(zero)
        assert not terminated
        assert truncated == (t == 999)
    assert task.max_steps == 1000


def test_render_rgb_array():
    env = get_task("dmc/pendulum-swingup").make(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8 and frame.std() > 0
    assert get_task("dmc/pendulum-swingup").make().render() is None


@pytest.mark.parametrize("name,expert_min", [("dmc/cartpole-swingup", 800), ("dmc/point_mass-hard", 800),
                                             ("dmc/reacher-hard", 900), ("dmc/ball_in_cup-catch", 800)])
def test_expert_beats_random(name, expert_min):
    task = get_task(name)
    env = task.make()
    seeds = (1, 2)
    expert = np.mean([run_episode(task, env, task.make_expert(env), seed=s, record=False).ret for s in seeds])
    rand = np.mean([run_episode(task, env, RandomPolicy(env), seed=s, record=False).ret for s in seeds])
    assert expert >= expert_min and expert > rand + 500, (expert, rand)
