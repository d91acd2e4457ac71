"""Noise-injected demonstrations (DART): the executed action is perturbed, the label is clean."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from gato.data import storage
from gato.commands.data import collect
from gato.envs import get_task
from gato.rollout import run_episode
from gato.experts.noise import LabelledAction, NoisyExpert, check_noise, perturb


def test_labels_are_the_clean_expert_action_while_the_state_follows_the_noisy_one():
    task = get_task("mujoco/inverted-pendulum")
    env = task.make()
    expert = task.make_expert(env)  # LQR on the observation: a function of the state alone
    noisy = run_episode(task, env, NoisyExpert(expert, env.action_space, 0.3), seed=3, max_steps=100).episode
    clean = run_episode(task, env, expert, seed=3, max_steps=100).episode
    # Every recorded label is what the expert wants in the state the noisy rollout visited.
    for obs, label in zip(noisy.observations, noisy.actions):
        np.testing.assert_array_equal(label, expert(obs))
    # ... the executed (noisy) actions are kept as the history ...
    assert not np.allclose(np.asarray(noisy.executed), np.asarray(noisy.actions))
    # ... and the noise was executed: the visited states leave the clean trajectory.
    assert not np.allclose(np.asarray(noisy.observations[1:20]), np.asarray(clean.observations[1:20]))


def test_perturb_stays_in_the_space_and_scales_with_the_range():
    rng = np.random.default_rng(0)
    box = gym.spaces.Box(-2.0, 2.0, (3,), np.float32)
    out = np.array([perturb(box, np.zeros(3, np.float32), 0.1, rng) for _ in range(2000)])
    assert box.low.min() <= out.min() and out.max() <= box.high.max()
    assert 0.17 < out.std() < 0.23  # 0.1 x half-range 2
    disc = gym.spaces.Discrete(4)
    picks = [perturb(disc, 1, 0.5, rng) for _ in range(4000)]
    assert 0.58 < np.mean(np.array(picks) == 1) < 0.67  # kept half the time, else uniform (1/4 of it is 1)


@pytest.mark.parametrize("noise,space,msg", [
    (1.5, gym.spaces.Discrete(3), "in \\[0, 1\\]"),
    (-0.1, gym.spaces.Discrete(3), "in \\[0, 1\\]"),
    (0.1, gym.spaces.Text(5), "Text"),
    (0.1, gym.spaces.Box(-np.inf, np.inf, (2,)), "bounded"),
])
def test_bad_noise_is_a_clear_error(noise, space, msg):
    with pytest.raises(ValueError, match=msg):
        check_noise(noise, space, "some/task")


def test_babyai_bot_labels_states_it_did_not_choose():
    """In advising mode the bot replans around a random action and still solves the level."""
    task = get_task("babyai/GoToLocal")
    env = task.make()
    r = run_episode(task, env, NoisyExpert(task.make_expert(env), env.action_space, 0.3), seed=5)
    assert r.success
    assert all(isinstance(a, int) for a in r.episode.actions)


def test_collect_with_noise_records_it_and_refuses_to_mix_levels(tmp_path):
    collect(("control/pendulum",), episodes=2, test_episodes=1, out=tmp_path, progress=False, noise=0.2)
    ds = storage.TaskDataset(tmp_path, "control/pendulum")
    assert ds.card["noise"] == 0.2 and len(ds.episodes("train")) == 2
    with pytest.raises(ValueError, match="noise 0.2, not 0.0"):
        collect(("control/pendulum",), episodes=3, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        collect(("control/pendulum",), episodes=3, out=tmp_path / "other", progress=False, noise=2.0)
    assert not (tmp_path / "other").exists()  # checked before anything was written


def test_a_policy_may_return_a_labelled_action():
    task = get_task("control/cartpole")
    env = task.make()

    class Pushy:
        def reset(self, seed=None):
            pass

        def __call__(self, obs):
            return LabelledAction(execute=0, label=1)

    r = run_episode(task, env, Pushy(), seed=0)
    assert r.length < 30 and all(a == 1 for a in r.episode.actions)  # always pushed left, labelled right
