"""The one environment loop: N environments of a task in lock step, any actor, optional recording.

Collection, reference scores, evaluation, play (video) and DAgger all run episodes through
`run`. An actor acts for all N environments at once (`act` takes N observations, returns N
actions): the Gato agent does one model forward per action token for all of them; per-environment
policies (experts, random) are wrapped in `PolicyActor`. An action may be a `LabelledAction`:
its `execute` part is stepped, its `label` recorded (noise-injected demonstrations, DAgger).
A recorded episode keeps both: `actions` are the labels, `executed` what the environment ran.
Episodes that end are replaced by the next seed's without disturbing the others; each result
says whether the task ended it or a time limit did (`truncated`); a recorded episode also keeps
its final observation, the one after its last action.
"""

from __future__ import annotations

import multiprocessing
import operator
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from gato.data.episode import Episode
from gato.envs.registry import Task
from gato.experts.noise import LabelledAction
from gato.io import exit_with_parent


@dataclass
class EpisodeResult:
    episode: Episode | None  # None unless recorded
    ret: float
    length: int
    success: bool | None  # None where the task defines no success
    truncated: bool  # stopped by a time limit, not by the task
    seed: int | None = None


class Actor(Protocol):
    def reset(self, rows: list[int], seeds: list[int | None]) -> None:
        """Rows `rows` start new episodes (reset with `seeds`)."""

    def act(self, observations: list[Any], forced: list[Any] | None = None) -> list[Any]:
        """One action (or LabelledAction) per environment; where `forced[r]` is not None, that
        action (an expert's, DAgger's mixture) is what row r executes and remembers."""


class PolicyActor:
    """One policy per environment (experts, random): each sees only its own environment.

    A policy with a `taken(action)` method is told the action executed after each step (the
    BabyAI bot replans around actions it did not choose)."""

    def __init__(self, policies: list):
        self.policies = policies
        self._taken = [getattr(p, "taken", None) for p in policies]
        if not any(self._taken):
            self.taken = None  # the loop then skips the call

    def reset(self, rows, seeds):
        for r, s in zip(rows, seeds):
            self.policies[r].reset(s)

    def act(self, observations, forced=None):
        if forced is None:
            return list(map(operator.call, self.policies, observations))  # no Python frame of its own
        return [p(o) if f is None else f for p, o, f in zip(self.policies, observations, forced)]

    def taken(self, row: int, action) -> None:
        t = self._taken[row]
        if t is not None:
            t(action)


class RandomPolicy:
    """Uniformly random actions from the action space (the paper's 'random' reference)."""

    def __init__(self, env: gym.Env):
        self.space = env.action_space

    def reset(self, seed: int | None = None) -> None:
        self.space.seed(seed)

    def __call__(self, observation):
        return self.space.sample()


@dataclass
class _Running:
    index: int  # position of its seed in the caller's list
    seed: int | None
    observations: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    executed: list = field(default_factory=list)
    relabelled: bool = False  # the actor gave separate labels (LabelledAction): keep `executed`
    rewards: list = field(default_factory=list)
    success: bool | None = None


def run(task: Task, envs: list[gym.Env], actor, seeds: Iterable[int | None], *, max_steps: int | None = None,
        record: bool = True, on_step: Callable[[int, gym.Env], None] | None = None,
        timing: dict | None = None) -> list[EpisodeResult]:
    """One episode per seed, `len(envs)` at a time, in lock step; results in seed order.

    `max_steps` caps an episode (default: the task's cap). With `record`, each result holds the
    episode (observations and labels), whose observations are checked against the space when it
    ends (an observation outside it is an error naming the task and step). `on_step(row, env)`
    runs after every environment step (e.g. to render a frame). `timing`, if given, accumulates
    seconds spent in the actor ("act"), in environment steps and resets ("env") and in `on_step`
    ("on_step")."""
    cap = max_steps or task.max_steps
    queue = list(enumerate(seeds))
    n = min(len(envs), len(queue))
    results: list[tuple[int, EpisodeResult]] = []
    running: list[_Running | None] = [None] * n
    obs: list[Any] = [None] * n
    # Looked up once, and clocks read only when asked: this loop's per-step Python is the cost of
    # recording a fast simulator (CartPole steps in ~8 us; `gato bench collect`).
    taken = getattr(actor, "taken", None)
    perf, timed = time.perf_counter, timing is not None
    clock = {} if timing is None else timing
    for k in ("act", "env", "on_step"):
        clock.setdefault(k, 0.0)

    def start(r: int) -> bool:
        if not queue:
            running[r] = None
            return False
        index, seed = queue.pop(0)
        t0 = perf()
        obs[r], _ = envs[r].reset(seed=seed)
        clock["env"] += perf() - t0
        running[r] = _Running(index, seed)
        return True

    for r in range(n):
        start(r)
    live = n
    actor.reset(list(range(n)), [running[r].seed for r in range(n)])
    while live:
        if timed:
            t0 = perf()
            actions = actor.act(obs)
            clock["act"] += perf() - t0
        else:
            actions = actor.act(obs)
        restarted = []
        for r, action in enumerate(actions):
            ep = running[r]
            if ep is None:
                continue  # a finished row keeps its slot; its actions are ignored
            if isinstance(action, LabelledAction):
                execute, label = action.execute, action.label
                ep.relabelled = True
            else:
                execute = label = action
            if record:
                ep.observations.append(obs[r])
                ep.labels.append(label)
                ep.executed.append(execute)
            else:  # evaluation: keep only the newest observation (to explain a failing step), not
                ep.observations[:] = [obs[r]]  # the episode (Atari: 28 KB a frame, 50 rows, 1000s of steps)
            env = envs[r]
            if timed:
                t0 = perf()
            try:
                obs[r], reward, terminated, trunc, info = env.step(execute)
            except Exception:
                # a bad observation explains it (without recording, only the newest is kept)
                first = 0 if record else len(ep.rewards)
                check_observations(task, env.observation_space, ep.observations, first_step=first)
                raise
            if timed:
                clock["env"] += perf() - t0
            ep.rewards.append(float(reward))
            if info and "success" in info:
                ep.success = bool(ep.success) or bool(info["success"])
            if taken is not None:
                taken(r, execute)
            if on_step is not None:
                t0 = perf()
                on_step(r, env)
                clock["on_step"] += perf() - t0
            if terminated or trunc or len(ep.rewards) >= cap:
                results.append((ep.index, _finish(task, env, ep, final=obs[r], truncated=not terminated,
                                                   record=record)))
                if start(r):
                    restarted.append(r)
                else:
                    live -= 1
        if restarted:
            actor.reset(restarted, [running[r].seed for r in restarted])
    return [res for _, res in sorted(results, key=lambda x: x[0])]


def _finish(task: Task, env: gym.Env, ep: _Running, final, truncated: bool, record: bool) -> EpisodeResult:
    if record:
        check_observations(task, env.observation_space, ep.observations)
    success = False if task.success and ep.success is None else ep.success
    rew = np.asarray(ep.rewards, np.float32)
    executed = ep.executed if ep.relabelled else None  # the history as it happened; labels are targets
    episode = Episode(ep.observations, ep.labels, rew, executed, final, truncated) if record else None
    return EpisodeResult(episode, float(rew.sum()), len(ep.rewards), success, truncated, ep.seed)


def run_episode(task: Task, env: gym.Env, policy, seed: int, max_steps: int | None = None,
                record: bool = True) -> EpisodeResult:
    """One episode of a per-environment policy (an expert, random, a noisy expert)."""
    return run(task, [env], PolicyActor([policy]), [seed], max_steps=max_steps, record=record)[0]


def check_observations(task: Task, space: gym.Space, observations: list, first_step: int = 0) -> None:
    """Every observation of an episode is inside `space`; else an error naming the task and the
    first bad step (`first_step`: the step of observations[0]). Box and Discrete leaves are
    checked for the whole episode at once."""
    bad = _first_outside(space, observations)
    if bad is not None:
        raise ValueError(f"{task.name}: observation at step {first_step + bad} is outside the observation space "
                         f"{space}: {_short(observations[bad])}")


def _first_outside(space: gym.Space, values: list) -> int | None:
    if isinstance(space, gym.spaces.Dict):
        if not all(isinstance(v, dict) and v.keys() == space.spaces.keys() for v in values):
            return next(i for i, v in enumerate(values) if not isinstance(v, dict) or v.keys() != space.spaces.keys())
        found = [_first_outside(sub, [v[k] for v in values]) for k, sub in space.spaces.items()]
        return min((f for f in found if f is not None), default=None)
    if isinstance(space, (gym.spaces.Box, gym.spaces.Discrete)):
        try:
            arr = np.asarray(values)  # (T, *shape); one call, not one per step
        except ValueError:  # ragged shapes
            arr = None
        if arr is not None and arr.shape == (len(values), *space.shape) and np.can_cast(arr.dtype, space.dtype):
            if isinstance(space, gym.spaces.Discrete):
                ok = (arr >= space.start) & (arr < space.start + space.n)
            else:
                ok = (arr >= space.low) & (arr <= space.high)
            ok = ok.reshape(len(values), -1).all(axis=1)
            return None if ok.all() else int(np.argmin(ok))
    return next((i for i, v in enumerate(values) if not space.contains(v)), None)


def _short(x) -> str:
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k!r}: {_short(v)}" for k, v in x.items()) + "}"
    a = np.asarray(x)
    return f"array(shape={a.shape}, dtype={a.dtype})" if a.size > 8 else repr(x)


def parallel_map(fn: Callable, jobs: Iterable, workers: int, start: str | None = None) -> Iterator:
    """fn over jobs, in order: in this process for one worker, else in a process pool (each
    worker keeps its own environments between jobs) whose workers die with this process, so a
    killed job (`gato collect`, `gato scores`) leaves none behind holding its lock and pipes.
    `start`: the multiprocessing start method ("spawn" for workers that run torch: a forked
    copy of a process whose OpenMP pool has run can hang)."""
    if workers <= 1:
        yield from map(fn, jobs)
        return
    ctx = multiprocessing.get_context(start) if start else None
    with ProcessPoolExecutor(max_workers=workers, initializer=exit_with_parent, initargs=(os.getpid(),),
                             mp_context=ctx) as pool:
        yield from pool.map(fn, jobs)
