"""Our tasks as Gymnasium environments: registered ids that pass gymnasium's own checker."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import gato.gym
from gato.envs import all_tasks

SAMPLE = ["control/cartpole", "babyai/GoToLocal", "mujoco/hopper", "dmc/cartpole-balance", "metaworld/reach",
          "box2d/lunarlander", "atari/pong"]


def _check(name):
    env = gym.make(gato.gym.gym_id(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped if False else env, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("name", SAMPLE)
def test_a_sample_of_tasks_passes_check_env(name):
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [t.name for t in all_tasks()])
def test_every_registered_task_passes_check_env(name):
    _check(name)


def test_the_agent_acts_over_a_gymnasium_vector_env():
    from gato.agent import GatoAgent
    from gato.config import get_preset
    from gato.data.episode import TaskSpec
    from gato.model import Gato

    envs = gym.vector.SyncVectorEnv([lambda: gym.make("gato/control-cartpole-v0")] * 3)
    assert len(gato.gym.IDS) == len(all_tasks())
    agent = GatoAgent(Gato(get_preset("gato-tiny", num_layers=1, context=64)),
                      TaskSpec("control/cartpole", envs.single_observation_space, envs.single_action_space), 3)
    obs, _ = envs.reset(seed=0)
    for _ in range(5):
        obs, reward, *_ = envs.step(np.asarray(agent.act(list(obs))))
    assert reward.shape == (3,)
