"""Classic control (Gymnasium): state observations, analytic experts.

Every expert is a few lines of control: a PD law for CartPole, energy pumping for the
mountain cars and Acrobot, energy swing-up with a PD catch for Pendulum.
"""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np

from gato.envs.registry import Task, register


class Expert:
    """Stateless expert from a function of the observation."""

    def __init__(self, fn, env=None):
        self.fn = fn

    def reset(self, seed=None):
        pass

    def __call__(self, obs):
        return self.fn(obs)


def cartpole(obs):
    x, v, theta, omega = obs
    return int(0.1 * x + 0.5 * v + 10.0 * theta + 1.5 * omega > 0)


def acrobot(obs):
    # Pump energy: torque on the second joint along its own angular velocity.
    return 2 if obs[5] > 0 else 0


def mountain_car(obs):
    return 2 if obs[1] >= 0 else 0


def mountain_car_continuous(obs):
    return np.array([1.0 if obs[1] >= 0 else -1.0], np.float32)


def pendulum(obs):
    cos, sin, omega = obs
    theta = np.arctan2(sin, cos)
    if cos > 0.9:  # near the top: PD catch
        u = -12.0 * theta - 2.0 * omega
    else:  # energy pumping towards the upright energy (m g l = 10 with l = 1, m = 1)
        energy = 0.5 * omega ** 2 + 10.0 * cos
        u = 2.0 * np.sign(omega * (10.0 - energy)) if omega != 0 else 2.0
    return np.array([np.clip(u, -2.0, 2.0)], np.float32)


def _make(env_id: str, render_mode=None, sticky=False, **kwargs):
    return gym.make(env_id, render_mode=render_mode, **kwargs)


for name, env_id, fn, steps in [
    ("cartpole", "CartPole-v1", cartpole, 500),
    ("acrobot", "Acrobot-v1", acrobot, 500),
    ("mountaincar", "MountainCar-v0", mountain_car, 200),
    ("mountaincar-continuous", "MountainCarContinuous-v0", mountain_car_continuous, 999),
    ("pendulum", "Pendulum-v1", pendulum, 200),
]:
    register(Task(f"control/{name}", partial(_make, env_id), partial(Expert, fn), "analytic", steps,
                  description=f"Gymnasium {env_id}"))
