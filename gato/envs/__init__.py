"""Environments: the task registry, one adapter module per domain, rollouts and reference scores."""

from gato.envs.registry import Expert, Task, all_tasks, get_task, register, resolve

__all__ = ["Expert", "Task", "all_tasks", "get_task", "register", "resolve"]
