"""Environments: the task registry, one adapter module per domain, rollouts and reference scores."""

import os

# Headless rendering for replay videos, set before any simulator is imported: MuJoCo and
# dm_control pick their OpenGL backend once, at first import; pygame (classic control, Box2D)
# needs no display with SDL's dummy driver. A value the user set wins.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from gato.envs.registry import Expert, Task, all_tasks, get_task, register, resolve

__all__ = ["Expert", "Task", "all_tasks", "get_task", "register", "resolve"]
