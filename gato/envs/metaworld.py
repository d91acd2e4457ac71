"""Meta-World v3 (MuJoCo Sawyer arm): all 50 tasks from state, with Meta-World's own scripted policies.

Setup as the MT1 benchmark defines it: the goal is part of the 39-value observation (hand, gripper
opening, object poses, the same for the previous frame, goal position) and every reset draws a new
goal and object placement from the task's randomisation range. Unlike MT1, which picks one of 50
pre-drawn goals and ignores the reset seed, the draw comes from the environment's own generator
seeded by `reset(seed=...)`, so an episode is a function of its seed (and building an environment
costs one MuJoCo model load, not MT1's extra environment and 50 resets).

Observations are cast to float32 and clipped to the goal-observable bounds that Meta-World itself
clips to in `step` (its reset observation is not clipped, and its declared `observation_space` is the
goal-hidden one). Episodes last 500 steps (Meta-World's `max_path_length`) and do not end on success;
`info["success"]` is a bool. The experts are `metaworld.policies.ENV_POLICY_MAP`: stateless
hand-written controllers of the observation, their actions clipped to [-1, 1].
"""

from __future__ import annotations

import warnings
from functools import partial

import gymnasium as gym
import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS
from metaworld.policies import ENV_POLICY_MAP

from gato.envs.registry import Task, register

MAX_STEPS = 500  # SawyerXYZEnv.max_path_length


class MetaWorldEnv(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """One Meta-World v3 task with the goal observed and a new seeded goal at every reset."""

    def __init__(self, env_name: str, render_mode: str | None = None):
        env = ALL_V3_ENVIRONMENTS[env_name](render_mode=render_mode)
        # What metaworld's goal-observable envs and MT1 tasks set, minus the frozen goal.
        env._partially_observable = False
        del env.sawyer_observation_space  # a cached property, computed with the goal hidden
        env._set_task_called = True
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True  # draw goals from env.np_random, not the global numpy generator
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        box = env.sawyer_observation_space
        self.observation_space = gym.spaces.Box(box.low.astype(np.float32), box.high.astype(np.float32),
                                                dtype=np.float32)
        self.env_name = env_name

    def reset(self, *, seed: int | None = None, options=None):
        if seed is not None:
            self.env.unwrapped.seed(seed)  # SawyerXYZEnv.reset ignores its seed argument
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        info["success"] = bool(info["success"])
        return obs, float(reward), terminated, truncated, info

    def observation(self, obs):
        space = self.observation_space
        return np.clip(obs, space.low, space.high).astype(np.float32)


class ScriptedExpert:
    """Meta-World's scripted policy for the task (stateless, so deterministic)."""

    def __init__(self, env: MetaWorldEnv):
        self.policy = ENV_POLICY_MAP[env.env_name]()

    def reset(self, seed=None):
        pass

    def __call__(self, obs):
        with warnings.catch_warnings(action="ignore"):  # "Constant(s) may be too high" at every step
            action = self.policy.get_action(np.asarray(obs, np.float64))
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def _make(env_name: str, render_mode=None, sticky=False):
    return MetaWorldEnv(env_name, render_mode=render_mode)


for _env_name in sorted(ENV_POLICY_MAP):
    register(Task(f"metaworld/{_env_name.removesuffix('-v3')}", partial(_make, _env_name), ScriptedExpert,
                  "scripted", MAX_STEPS, success=True,
                  description=f"Meta-World {_env_name}, MT1 goals in the observation"))
