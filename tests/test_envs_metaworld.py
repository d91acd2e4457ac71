"""Meta-World adapter specifics: every v3 task registered, the goal observed and drawn per seed,
success reported as a bool, the scripted experts solve tasks that random actions do not."""

from __future__ import annotations

import numpy as np
import pytest
from metaworld.env_dict import ALL_V3_ENVIRONMENTS

from gato.envs import all_tasks, get_task
from gato.rollout import RandomPolicy, run_episode


def test_all_fifty_v3_tasks_registered():
    names = {t.name for t in all_tasks("metaworld")}
    assert names == {f"metaworld/{n.removesuffix('-v3')}" for n in ALL_V3_ENVIRONMENTS}
    assert len(names) == 50
    assert all(t.max_steps == 500 and t.success for t in all_tasks("metaworld"))


def test_goal_is_observed_and_drawn_from_the_reset_seed():
    env = get_task("metaworld/reach").make()
    obs0, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs0[-3:], env.unwrapped._target_pos, atol=1e-6)  # the goal, not zeros
    assert obs0.dtype == np.float32 and obs0.shape == (39,)
    goals = {tuple(env.reset(seed=s)[0][-3:]) for s in range(5)}
    assert len(goals) == 5  # a new goal per seed
    np.testing.assert_array_equal(env.reset(seed=0)[0], obs0)  # the same seed, the same episode
    assert not np.array_equal(env.reset()[0][-3:], env.reset()[0][-3:])  # unseeded resets draw anew
    env.close()


def test_observation_clipped_to_the_goal_observable_bounds():
    env = get_task("metaworld/assembly").make()
    space = env.observation_space
    assert np.all(space.high[-3:] > 0)  # not metaworld's declared goal-hidden space (goal bounds 0)
    obs, _ = env.reset(seed=1)
    obs, *_ = env.step(np.ones(4, np.float32))
    assert space.contains(obs)
    raw = np.full(39, 10.0)
    np.testing.assert_array_equal(env.observation(raw), np.minimum(raw, space.high).astype(np.float32))
    env.close()


def test_reach_expert_succeeds_and_random_does_not():
    task = get_task("metaworld/reach")
    env = task.make()
    expert = run_episode(task, env, task.make_expert(env), seed=3, max_steps=150, record=False)
    rand = run_episode(task, env, RandomPolicy(env), seed=3, max_steps=150, record=False)
    env.close()
    assert expert.success is True and rand.success is False
    assert expert.ret > rand.ret


def test_success_is_a_bool():
    env = get_task("metaworld/door-open").make()
    env.reset(seed=0)
    info = env.step(np.zeros(4, np.float32))[-1]
    assert type(info["success"]) is bool
    env.close()


def test_rgb_render():
    env = get_task("metaworld/pick-place").make(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    env.close()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 10


@pytest.mark.slow
@pytest.mark.parametrize("name", ["metaworld/pick-place", "metaworld/door-open", "metaworld/peg-insert-side"])
def test_expert_solves_and_beats_random(name):
    task = get_task(name)
    env = task.make()
    expert = [run_episode(task, env, task.make_expert(env), seed=s, record=False) for s in range(3)]
    rand = [run_episode(task, env, RandomPolicy(env), seed=s, record=False) for s in range(3)]
    env.close()
    assert all(r.success for r in expert)
    assert np.mean([r.ret for r in expert]) > 2 * np.mean([r.ret for r in rand])
