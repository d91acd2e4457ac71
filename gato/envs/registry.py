"""The task registry: every control task by its name `domain/task`, one adapter module per domain.

A `Task` knows how to make its environment (already adapted so its observation and action
spaces are ones the tokenizers handle), how to build its expert, and how long an episode may
run. Domain modules register their tasks when imported; a domain whose simulator is not
installed is skipped with a message, never a crash.
"""

from __future__ import annotations

import difflib
import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym

from gato.data.episode import TaskSpec


class Expert(Protocol):
    """A policy bound to one environment instance (it may read the simulator's internals)."""

    def reset(self, seed: int | None = None) -> None: ...

    def __call__(self, observation: Any) -> Any: ...


@dataclass(frozen=True)
class Task:
    name: str  # "domain/task"
    make_env: Callable[..., gym.Env] = field(repr=False)  # make_env(render_mode=None, sticky=False)
    make_expert: Callable[[gym.Env], Expert] = field(repr=False)
    expert_kind: str  # "bot", "scripted", "analytic", "heuristic", "trained"
    max_steps: int  # episode cap for collection and evaluation
    success: bool = False  # the environment reports info["success"]
    description: str = ""
    # Why the expert cannot label states it did not drive the environment into ("": it can;
    # DAgger needs it). Experts that keep state are told the executed action through `taken`.
    cannot_label: str = ""

    @property
    def domain(self) -> str:
        return self.name.split("/", 1)[0]

    def make(self, render_mode: str | None = None, sticky: bool = False) -> gym.Env:
        """The adapted environment. `sticky`: sticky actions (Atari evaluation) where defined."""
        return self.make_env(render_mode=render_mode, sticky=sticky)


# Domain name -> module that registers its tasks on import.
DOMAINS: dict[str, str] = {
    "atari": "gato.envs.atari",
    "babyai": "gato.envs.babyai",
    "box2d": "gato.envs.box2d",
    "control": "gato.envs.control",
    "dmc": "gato.envs.dmc",
    "metaworld": "gato.envs.metaworld",
    "mujoco": "gato.envs.mujoco",
}

_TASKS: dict[str, Task] = {}
_LOADED: set[str] = set()
SKIPPED: dict[str, str] = {}  # domain -> why it was skipped (missing simulator)


def register(task: Task) -> Task:
    if "/" not in task.name:
        raise ValueError(f"task name {task.name!r} must be 'domain/task'")
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is registered twice")
    _TASKS[task.name] = task
    return task


def _load(domain: str) -> None:
    module = DOMAINS[domain]
    if module in _LOADED:
        return
    _LOADED.add(module)
    try:
        importlib.import_module(module)
    except ImportError as e:
        if getattr(e, "name", None) == module:  # our own adapter is missing: a bug, not a missing simulator
            raise
        for d, m in DOMAINS.items():
            if m == module:
                SKIPPED[d] = f"{e} (install the simulator to use this domain)"


def all_tasks(domain: str | None = None) -> list[Task]:
    """Registered tasks, sorted by name (all domains are loaded)."""
    for d in DOMAINS:
        _load(d)
    return sorted((t for t in _TASKS.values() if domain is None or t.domain == domain), key=lambda t: t.name)


def get_task(name: str) -> Task:
    domain = name.split("/", 1)[0]
    if domain in DOMAINS:
        _load(domain)
        if domain in SKIPPED:
            raise ValueError(f"task {name!r}: domain {domain!r} is not available: {SKIPPED[domain]}")
    if name in _TASKS:
        return _TASKS[name]
    names = [t.name for t in all_tasks()]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}" if close else f"; see `gato tasks` ({len(names)} tasks)"
    raise ValueError(f"unknown task {name!r}{hint}")


def resolve(names: list[str]) -> list[Task]:
    """Task names and domain names -> tasks (a domain means all its tasks), in order, unique."""
    out: dict[str, Task] = {}
    for n in names:
        if "/" not in n and n in DOMAINS:
            tasks = all_tasks(n)
            if not tasks:
                raise ValueError(f"domain {n!r} has no tasks: {SKIPPED.get(n, 'none registered')}")
            out.update((t.name, t) for t in tasks)
        else:
            t = get_task(n)
            out[t.name] = t
    return list(out.values())


@functools.cache
def task_spec(name: str) -> TaskSpec | None:
    """The spaces of a registered task's environment (made and closed once); None for a name the
    registry does not have or whose simulator is not installed."""
    try:
        task = get_task(name)
    except ValueError:
        return None
    env = task.make()
    try:
        return TaskSpec(name, env.observation_space, env.action_space)
    finally:
        env.close()
