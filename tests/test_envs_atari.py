"""Atari adapter specifics: preprocessing (frame skip, max-pooled 80x80 RGB, no-op starts, sticky
actions), experts that leave the emulator as they found it, and experts far above random."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ale_py")
cv2 = pytest.importorskip("cv2")

from gato.envs import all_tasks, get_task
from gato.envs.atari import FRAME_SKIP, NOOP_MAX, SIZE, Paddle
from gato.rollout import RandomPolicy, run_episode

TASKS = all_tasks("atari")


def test_tasks_and_spaces():
    assert len(TASKS) >= 6
    for task in TASKS:
        env = task.make()
        ale = env.unwrapped.ale
        assert env.observation_space.shape == (SIZE, SIZE, 3) and env.observation_space.dtype == np.uint8
        assert env.action_space.n == len(ale.getMinimalActionSet())
        env.close()


def test_observation_is_the_resized_screen():
    env = get_task("atari/pong").make()
    obs, _ = env.reset(seed=0)
    # At reset the older frame of the max-pool buffer is blank: the observation is the screen.
    screen = env.unwrapped.ale.getScreenRGB()
    assert np.array_equal(obs, cv2.resize(screen, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
    obs, *_ = env.step(0)
    assert obs.shape == (SIZE, SIZE, 3) and obs.dtype == np.uint8 and obs.max() > 0


def test_frame_skip_and_noop_starts():
    env = get_task("atari/breakout").make()
    ale = env.unwrapped.ale
    starts = set()
    for seed in range(6):
        env.reset(seed=seed)
        starts.add(ale.getEpisodeFrameNumber())
        env.reset(seed=seed)
        assert ale.getEpisodeFrameNumber() in starts  # the seed decides the no-ops
    assert len(starts) > 1 and all(1 <= s <= NOOP_MAX for s in starts)
    before = ale.getEpisodeFrameNumber()
    env.step(0)
    assert ale.getEpisodeFrameNumber() - before == FRAME_SKIP


def test_sticky_actions_only_when_asked():
    task = get_task("atari/freeway")
    assert task.make().unwrapped.ale.getFloat("repeat_action_probability") == 0.0
    assert task.make(sticky=True).unwrapped.ale.getFloat("repeat_action_probability") == 0.25


def test_paddle_reflection_stays_between_walls():
    p = Paddle.__new__(Paddle)
    p.walls = (44, 204)
    assert p._reflect(100) == 100 and p._reflect(214) == 194 and p._reflect(30) == 58
    assert all(44 <= p._reflect(y) <= 204 for y in range(-500, 800, 7))


def test_lookahead_expert_leaves_the_emulator_unchanged():
    env = get_task("atari/enduro").make()
    expert = get_task("atari/enduro").make_expert(env)
    obs, _ = env.reset(seed=0)
    expert.reset(0)
    ale = env.unwrapped.ale
    for _ in range(3):
        ram, frame = ale.getRAM().copy(), ale.getEpisodeFrameNumber()
        action = expert(obs)
        assert np.array_equal(ale.getRAM(), ram) and ale.getEpisodeFrameNumber() == frame
        obs, *_ = env.step(action)


def test_expert_is_deterministic_given_the_seed():
    task = get_task("atari/pong")
    env = task.make()
    expert = task.make_expert(env)
    a = run_episode(task, env, expert, seed=3, max_steps=150)
    b = run_episode(task, env, expert, seed=3, max_steps=150)
    assert np.array_equal(np.asarray(a.episode.actions), np.asarray(b.episode.actions))


@pytest.mark.parametrize("name,steps", [("atari/breakout", 300), ("atari/freeway", 300), ("atari/bowling", 400)])
def test_expert_beats_random_early(name, steps):
    task = get_task(name)
    env = task.make()
    expert = np.mean([run_episode(task, env, task.make_expert(env), seed=s, max_steps=steps, record=False).ret
                      for s in range(2)])
    rand = np.mean([run_episode(task, env, RandomPolicy(env), seed=s, max_steps=steps, record=False).ret
                    for s in range(2)])
    assert expert > rand + 2, f"{name}: expert {expert}, random {rand}"


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS, ids=[t.name for t in TASKS])
def test_expert_far_above_random(task):
    """Full episodes at the task's cap (3 seeds): the expert is more than 10 points above random."""
    env = task.make()
    expert = np.mean([run_episode(task, env, task.make_expert(env), seed=s, record=False).ret for s in range(3)])
    rand = np.mean([run_episode(task, env, RandomPolicy(env), seed=s, record=False).ret for s in range(3)])
    assert expert > rand + 10, f"{task.name}: expert {expert}, random {rand}"
