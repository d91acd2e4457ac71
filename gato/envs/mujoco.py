"""Gymnasium MuJoCo (v5): state observations; analytic and scripted experts, and linear
locomotion experts trained by the ARS recipe in gato/experts/ars.py (weights committed).

- InvertedPendulum, InvertedDoublePendulum: discrete-time LQR about the upright state. The
  linear model comes from central finite differences of one environment step (all its physics
  substeps) on a private copy of the simulator state; `mjd_transitionFD` cannot be used because
  these models integrate with RK4. The double pendulum reaches ~9360, the task's maximum.
- Reacher: inverse kinematics of the two-link arm to the target (the solution nearer the current
  joints), PD in joint space, gains small because the task charges ||a||^2 per step.
- Pusher: a scripted push. Wrist over a point behind the object (opposite the goal), down to
  table height, then through the object's centre towards the goal; joint targets from damped
  least squares IK on the arm's own model (wrist position, fork pointing along the push), tracked
  by a mass-matrix-scaled PD law. Pushing is slow by nature in v5: the object's tiny mass makes
  MuJoCo's contact regularisation large, so it moves at ~4 cm/s at best; the expert scores about
  -35 (holding still: about -57), the random policy about -147.
- Swimmer: a travelling-wave gait (two phase-shifted sines) plus feedback on the mean heading.

Experts read only the observation (and the model, for kinematics). Observations are the
environment's float64 Box cast to a float32 Box of the same shape and bounds; actions are the
environment's float32 torque Box.
"""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import mujoco
import numpy as np

from gato.envs.registry import Task, register
from gato.experts import ARSExpert
from gato.experts.ars import ENV_KWARGS


class Float32Observation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """The same observation in float32, with a float32 Box of the same shape and bounds."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        space = env.observation_space
        self.observation_space = gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32),
                                                space.shape, np.float32)

    def observation(self, observation):
        return np.asarray(observation, np.float32)


def _make(env_id: str, render_mode=None, sticky=False):
    return Float32Observation(gym.make(env_id, render_mode=render_mode, **ENV_KWARGS.get(env_id, {})))


# ------------------------------------------------------------------ pendulums: LQR

def step_jacobians(env: gym.Env, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of one environment step about qpos = qvel = ctrl = 0 (upright): x' ~ A x + B u."""
    u = env.unwrapped
    m, d = u.model, mujoco.MjData(u.model)
    nq, nv, nu = m.nq, m.nv, m.nu

    def step(z):
        d.qpos[:], d.qvel[:], d.ctrl[:] = z[:nq], z[nq:nq + nv], z[nq + nv:]
        mujoco.mj_step(m, d, u.frame_skip)
        return np.concatenate([d.qpos, d.qvel])

    n = nq + nv + nu
    jac = np.stack([(step(eps * e) - step(-eps * e)) / (2 * eps) for e in np.eye(n)], axis=1)
    return jac[:, :nq + nv], jac[:, nq + nv:]


def dlqr(A, B, Q, R, iterations: int = 2000) -> np.ndarray:
    """Gain K of the infinite-horizon discrete LQR (u = -K x), by Riccati iteration."""
    P = Q
    for _ in range(iterations):
        K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P = Q + A.T @ P @ (A - B @ K)
    return K


def pendulum_state(obs):
    return obs.astype(np.float64)  # (cart x, pole angle, their velocities): the state as is


def double_pendulum_state(obs):
    # (x, sin q1, sin q2, cos q1, cos q2, v, w1, w2, constraint force) -> (x, q1, q2, v, w1, w2)
    return np.array([obs[0], np.arctan2(obs[1], obs[3]), np.arctan2(obs[2], obs[4]), *obs[5:8]])


class LQRExpert:
    def __init__(self, env: gym.Env, state, q_diag):
        A, B = step_jacobians(env)
        self.K = dlqr(A, B, np.diag(q_diag), np.eye(B.shape[1]))
        self.state = state
        self.low, self.high = env.action_space.low, env.action_space.high

    def reset(self, seed=None):
        pass

    def __call__(self, obs):
        return np.clip(-self.K @ self.state(obs), self.low, self.high).astype(np.float32)


# ------------------------------------------------------------------ reacher: IK + PD

def _wrap(angle):
    return (angle + np.pi) % (2 * np.pi) - np.pi


class ReacherExpert:
    KP, KD = 0.25, 0.05  # tuned for return: distance + ||a||^2 per step

    def __init__(self, env: gym.Env):
        m = env.unwrapped.model
        self.l1, self.l2 = m.body("body1").pos[0], m.body("fingertip").pos[0]

    def reset(self, seed=None):
        pass

    def __call__(self, obs):
        obs = obs.astype(np.float64)
        q, qd, (gx, gy) = np.arctan2(obs[2:4], obs[0:2]), obs[6:8], obs[4:6]
        c = np.clip((gx * gx + gy * gy - self.l1 ** 2 - self.l2 ** 2) / (2 * self.l1 * self.l2), -1, 1)
        errors = []
        for elbow in (np.arccos(c), -np.arccos(c)):  # both IK solutions; the nearer one is used
            shoulder = np.arctan2(gy, gx) - np.arctan2(self.l2 * np.sin(elbow), self.l1 + self.l2 * np.cos(elbow))
            errors.append(_wrap(np.array([shoulder, elbow]) - q))
        error = min(errors, key=lambda e: np.abs(e).sum())
        return np.clip(self.KP * error - self.KD * qd, -1, 1).astype(np.float32)


# ------------------------------------------------------------------ pusher: scripted push

class PusherExpert:
    KP, KD, STEP_MAX = 10.0, 3.8, 0.6  # joint-space PD (per unit inertia), largest joint error used
    BACK, LIFT = 0.07, 0.08  # approach point: behind the object, above the table
    W_ROT, DAMPING, IK_ITERATIONS = 0.06, 1e-2, 10
    Z = np.array([0.0, 0.0, 1.0])

    def __init__(self, env: gym.Env):
        self.m = env.unwrapped.model
        self.d = mujoco.MjData(self.m)  # scratch state for kinematics and dynamics
        self.wrist = self.m.body("tips_arm").id
        self.low, self.high = self.m.jnt_range[:7, 0], self.m.jnt_range[:7, 1]

    def reset(self, seed=None):
        self.phase, self.q_ref = 0, None

    def _ik(self, q, target, push_dir):
        """Joints placing the wrist at `target` with the fork along `push_dir` and level."""
        m, d = self.m, self.d
        want = np.stack([push_dir, np.cross(self.Z, push_dir), self.Z], axis=1)
        jp, jr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        for _ in range(self.IK_ITERATIONS):
            d.qpos[:7] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            mujoco.mj_jacBody(m, d, jp, jr, self.wrist)
            R = d.xmat[self.wrist].reshape(3, 3)
            rot = 0.5 * sum(np.cross(R[:, i], want[:, i]) for i in range(3))
            e = np.concatenate([target - d.xpos[self.wrist], self.W_ROT * rot])
            J = np.vstack([jp[:, :7], self.W_ROT * jr[:, :7]])
            q = np.clip(q + J.T @ np.linalg.solve(J @ J.T + self.DAMPING * np.eye(6), e), self.low, self.high)
        return q

    def __call__(self, obs):
        obs = obs.astype(np.float64)
        q, qd, wrist, obj, goal = obs[:7], obs[7:14], obs[14:17], obs[17:20], obs[20:23]
        push = np.append(goal[:2] - obj[:2], 0.0)
        push /= np.linalg.norm(push) + 1e-9
        behind = obj - self.BACK * push
        if self.phase == 0:  # over the point behind the object
            target = behind + self.LIFT * self.Z
            self.phase += np.linalg.norm((wrist - target)[:2]) < 0.03
        if self.phase == 1:  # down to the object's height
            target = behind
            self.phase += wrist[2] - obj[2] < 0.02
        if self.phase == 2:  # push through the object's centre
            target = obj
        self.q_ref = self._ik(q if self.q_ref is None else self.q_ref, target, push)
        m, d = self.m, self.d
        d.qpos[:7], d.qvel[:7] = q, qd
        mujoco.mj_forward(m, d)
        M = np.zeros((m.nv, m.nv))
        mujoco.mj_fullM(m, M, d.qM)
        acc = self.KP * np.clip(self.q_ref - q, -self.STEP_MAX, self.STEP_MAX) - self.KD * qd
        tau = M[:7, :7] @ acc + d.qfrc_bias[:7] - d.qfrc_passive[:7]
        return np.clip(tau, -2, 2).astype(np.float32)


# ------------------------------------------------------------------ swimmer: travelling wave

class SwimmerExpert:
    OMEGA, PHASE, AMPLITUDE, HEADING_GAIN = 3.0, 0.5, 2.0, 1.0  # rad/s, rad, torque, torque/rad

    def __init__(self, env: gym.Env):
        self.dt = env.unwrapped.dt

    def reset(self, seed=None):
        self.t = 0

    def __call__(self, obs):
        # obs[:3]: front link angle and the two joint angles; mean heading of the three links
        heading = obs[0] + (2 * obs[1] + obs[2]) / 3
        phase = self.OMEGA * self.t * self.dt
        self.t += 1
        wave = self.AMPLITUDE * np.sin([phase, phase - self.PHASE])
        return np.clip(wave + self.HEADING_GAIN * heading, -1, 1).astype(np.float32)


for name, env_id, expert, kind, steps in [
    ("inverted-pendulum", "InvertedPendulum-v5",
     partial(LQRExpert, state=pendulum_state, q_diag=[1, 10, 1, 1]), "analytic", 1000),
    ("inverted-double-pendulum", "InvertedDoublePendulum-v5",
     partial(LQRExpert, state=double_pendulum_state, q_diag=[1, 10, 10, 1, 1, 1]), "analytic", 1000),
    ("reacher", "Reacher-v5", ReacherExpert, "analytic", 50),
    ("pusher", "Pusher-v5", PusherExpert, "scripted", 100),
    ("swimmer", "Swimmer-v5", SwimmerExpert, "scripted", 1000),
]:
    register(Task(f"mujoco/{name}", partial(_make, env_id), expert, kind, steps, description=f"Gymnasium {env_id}"))


# ------------------------------------------------------------------ locomotion: trained (ARS)

for name, env_id in [("hopper", "Hopper-v5"), ("halfcheetah", "HalfCheetah-v5"),
                     ("walker2d", "Walker2d-v5"), ("ant", "Ant-v5")]:
    register(Task(f"mujoco/{name}", partial(_make, env_id), partial(ARSExpert, weights=f"{name}.npz"), "trained",
                  1000, description=f"Gymnasium {env_id}; linear ARS expert (gato/experts/weights/{name}.npz)"))
