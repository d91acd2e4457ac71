"""Box2D (Gymnasium): LunarLander (discrete and continuous) and BipedalWalker, with the
heuristic controllers Gymnasium itself ships."""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np
from gymnasium.envs.box2d import bipedal_walker, lunar_lander

from gato.envs.registry import Task, register


class LanderExpert:
    def __init__(self, env):
        self.env = env

    def reset(self, seed=None):
        pass

    def __call__(self, obs):
        a = lunar_lander.heuristic(self.env.unwrapped, obs)
        return np.asarray(a, np.float32) if self.env.unwrapped.continuous else int(a)


class WalkerExpert:
    def __init__(self, env):
        self.reset()

    def reset(self, seed=None):
        self.h = bipedal_walker.BipedalWalkerHeuristics()
        self.h.a = np.zeros(4)  # the class keeps a shared array; give each episode its own

    def __call__(self, obs):
        return self.h.step_heuristic(obs).astype(np.float32)


class ClipObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Observations clipped to the declared space (BipedalWalker's speeds can leave their [-5, 5])."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)

    def observation(self, o):
        space = self.observation_space
        return np.clip(o, space.low, space.high).astype(space.dtype)


def _make(env_id: str, render_mode=None, sticky=False, **kwargs):
    return ClipObservation(gym.make(env_id, render_mode=render_mode, **kwargs))


register(Task("box2d/lunarlander", partial(_make, "LunarLander-v3"), LanderExpert, "heuristic", 1000,
              description="Gymnasium LunarLander-v3, discrete engines"))
register(Task("box2d/lunarlander-continuous", partial(_make, "LunarLander-v3", continuous=True), LanderExpert,
              "heuristic", 1000, description="Gymnasium LunarLander-v3, continuous engines"))
register(Task("box2d/bipedalwalker", partial(_make, "BipedalWalker-v3"), WalkerExpert, "heuristic", 1600,
              description="Gymnasium BipedalWalker-v3",
              cannot_label="Gymnasium's walker heuristic is a gait state machine whose phase follows the "
                           "actions it chose itself; it has no answer for a state another policy reached"))
