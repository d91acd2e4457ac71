"""DeepMind Control Suite from state, with analytic experts.

`DMCEnv` is a thin gymnasium.Env around `dm_control.suite.load`: the observation is a Dict of
the suite's keys, each a float32 Box (scalars become shape (1,)); the action is the suite's
bounded Box; the reward is the suite's; the suite's 1000-step time limit ends an episode as
`truncated`. `reset(seed)` reseeds the task's RandomState in place, so a seed fixes the episode.

The experts are classic control laws on the observation. Two read the simulator through
`env.unwrapped.physics`: the LQR balance (the joint state, which the observation holds as
cos/sin and velocities) and point_mass-hard (the episode's random actuator mixing, which the
observation does not hold: that expert knows what the agent must infer).
- cartpole, pendulum: energy-pumping swing-up, then LQR (gain of the MuJoCo model linearised
  at the upright pose) to catch and balance;
- point_mass: PD towards the target at the origin;
- reacher: damped least-squares inverse kinematics on 'to_target', then joint-space PD;
- ball_in_cup: pump the hanging ball's swing with the cup, then keep the cup under the ball.
Tried and dropped (far below the suite's learned experts): finger-spin (open-loop flicks, return
~130) and acrobot-swingup (elbow pumping, ~30); their random returns are ~1 and ~4.
"""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from gato.envs.registry import Task, register


class DMCEnv(gym.Env):
    """A dm_control suite task as a Gymnasium environment (see the module docstring)."""

    def __init__(self, domain: str, task: str, render_mode: str | None = None,
                 height: int = 240, width: int = 320):
        # A slow import (~0.5 s): only when an environment is made.
        from dm_control import suite

        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r}: only 'rgb_array' is supported")
        self.env = suite.load(domain, task)
        self.physics = self.env.physics
        self.render_mode, self.height, self.width = render_mode, height, width
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": round(1 / self.env.control_timestep())}
        self.observation_space = spaces.Dict({
            k: spaces.Box(-np.inf, np.inf, v.shape or (1,), np.float32)
            for k, v in self.env.observation_spec().items()})
        a = self.env.action_spec()
        self.action_space = spaces.Box(a.minimum.astype(np.float32), a.maximum.astype(np.float32),
                                       dtype=np.float32)

    def _obs(self, timestep) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, np.float32).reshape(self.observation_space[k].shape)
                for k, v in timestep.observation.items()}

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.env.task.random.seed(seed)
        return self._obs(self.env.reset()), {}

    def step(self, action):
        ts = self.env.step(np.asarray(action, np.float64))
        terminated = ts.last() and ts.discount == 0
        return self._obs(ts), float(ts.reward or 0.0), terminated, ts.last() and not terminated, {}

    def render(self):
        if self.render_mode == "rgb_array":
            return self.physics.render(self.height, self.width, camera_id=0)
        return None

    def close(self):
        self.env.close()


# ------------------------------------------------------------------------------------ experts

def lqr_gain(physics, q=1.0, r=1.0, eps=1e-6) -> np.ndarray:
    """Discrete LQR gain K (u = -K [qpos, qvel]) of the model linearised at qpos = qvel = 0 by
    central finite differences of one physics step (hinge and slide joints only: nq = nv)."""
    import mujoco
    from scipy.linalg import solve_discrete_are

    m = physics.model.ptr
    d = mujoco.MjData(m)
    n, nu = m.nq + m.nv, m.nu

    def step(x, u):
        d.qpos[:], d.qvel[:], d.ctrl[:] = x[:m.nq], x[m.nq:], u
        mujoco.mj_step(m, d)
        return np.concatenate([d.qpos, d.qvel])

    x0, u0 = np.zeros(n), np.zeros(nu)
    A = np.stack([step(x0 + e, u0) - step(x0 - e, u0) for e in eps * np.eye(n)], 1) / (2 * eps)
    B = np.stack([step(x0, u0 + e) - step(x0, u0 - e) for e in eps * np.eye(nu)], 1) / (2 * eps)
    Q, R = np.diag(np.broadcast_to(q, n)).astype(float), r * np.eye(nu)
    P = solve_discrete_are(A, B, Q, R)
    return np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


class Expert:
    """A control law `policy(self, obs)` bound to one environment's physics."""

    def __init__(self, policy, env, lqr: dict | None = None):
        self.policy, self.physics = policy, env.unwrapped.physics
        self.gain = lqr_gain(self.physics, **lqr) if lqr is not None else None

    def reset(self, seed=None):
        pass

    def __call__(self, obs):
        return np.clip(self.policy(self, obs), -1.0, 1.0).astype(np.float32)

    def balance(self):
        """LQR action around the upright (all-zero) pose, angles wrapped (cartpole's slider
        stays within +-1.8, where wrapping is the identity)."""
        d = self.physics.data
        return -self.gain @ np.concatenate([_wrap(d.qpos), d.qvel])


def cartpole(ex, obs):
    x, cos, _ = obs["position"]
    v, w = obs["velocity"]
    if cos > 0.9:
        return ex.balance()
    # Energy pumping towards the upright energy (pole: m = 0.1, l_com = 0.5, I = m l^2 / 3),
    # with a PD term keeping the cart near the centre of its rail.
    energy = 0.5 * 0.1 / 3 * w ** 2 + 0.1 * 9.81 * 0.5 * (cos - 1)
    return [5.0 * energy * np.sign(w * cos + 1e-6) - x - v]


def pendulum(ex, obs):
    cos, _ = obs["orientation"]
    w = obs["velocity"][0]
    if cos > 0.9:
        return ex.balance()
    energy = 0.5 * 0.25 * w ** 2 + 9.81 * 0.5 * (cos - 1)  # point mass 1 at 0.5 m
    return [np.sign(-w * energy + 1e-6)]


def point_mass(ex, obs):
    force = -50.0 * obs["position"] - 5.0 * obs["velocity"]
    mixing = ex.physics.model.wrap_prm[:4].reshape(2, 2)  # actuator i pushes along row i ('hard')
    return np.linalg.solve(mixing.T, force)


def reacher(ex, obs):
    q, qd, err = obs["position"], obs["velocity"], obs["to_target"]
    l1 = l2 = 0.12
    s1, c1, s12, c12 = np.sin(q[0]), np.cos(q[0]), np.sin(q.sum()), np.cos(q.sum())
    jac = np.array([[-l1 * s1 - l2 * s12, -l2 * s12], [l1 * c1 + l2 * c12, l2 * c12]])
    dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-3 * np.eye(2), err)
    return 20.0 * dq - qd


def ball_in_cup(ex, obs):
    cx, cz, bx, bz = obs["position"]
    cvx, cvz, bvx, bvz = obs["velocity"]
    # Ball relative to the string's anchor under the cup (world z: cup 0.6 - 0.108, ball 0.2).
    rx, rz = bx - cx, bz - cz - 0.292
    if rz > 0:  # ball above the anchor: bring the cup under it (PD, cancelling the cup's spring)
        target = np.array([bx, bz - 0.35])
        return 30.0 * (target - [cx, cz]) + 0.3 * np.array([bvx - cvx, bvz - cvz]) + 4.0 * np.array([cx, cz])
    # Swing the ball up: push the cup against the swing's angular velocity (horizontal) and
    # raise it while the ball is low on its arc (vertical, parametric pumping).
    angle = np.arctan2(rx, -rz)
    w = (-rz * bvx + rx * bvz) / (rx * rx + rz * rz + 1e-9)
    return [np.sign(w * np.cos(angle) + 1e-9), np.sign(np.cos(angle) - 0.4)]


BALANCE = {"q": (10.0, 10.0, 1.0, 1.0)}  # cartpole: weight positions over velocities
TASKS = [  # domain, task, expert, LQR weights for the upright pose (None: no LQR)
    ("cartpole", "balance", cartpole, BALANCE),
    ("cartpole", "balance_sparse", cartpole, BALANCE),
    ("cartpole", "swingup", cartpole, BALANCE),
    ("cartpole", "swingup_sparse", cartpole, BALANCE),
    ("pendulum", "swingup", pendulum, {}),
    ("point_mass", "easy", point_mass, None),
    ("point_mass", "hard", point_mass, None),
    ("reacher", "easy", reacher, None),
    ("reacher", "hard", reacher, None),
    ("ball_in_cup", "catch", ball_in_cup, None),
]


def _make(domain, task, render_mode=None, sticky=False):
    return DMCEnv(domain, task, render_mode=render_mode)


for _domain, _task, _policy, _lqr in TASKS:
    register(Task(f"dmc/{_domain}-{_task}", functools.partial(_make, _domain, _task),
                  functools.partial(Expert, _policy, lqr=_lqr), "analytic", 1000,
                  description=f"DeepMind Control Suite {_domain}-{_task}, from state"))
