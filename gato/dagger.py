"""DAgger (Ross et al. 2011) with the in-repo experts: the learner drives, the expert labels.

A behaviour-cloned policy makes small errors that take it to states no demonstration visited,
where it errs more (compounding error). Gato and JAT can only learn from fixed expert
trajectories; our experts live in the repository and can be asked what to do in any state. A
DAgger round rolls out the current checkpoint in N environments in lock step
(`gato.rollout.run`), asks each environment's own expert for its action at every visited state
(`ExpertLabels`), and writes those episodes, the learner's states with the expert's actions,
as shards of the task's `dagger` split. Training then continues on the aggregate: the
demonstrations plus every round so far (gato/data/datasets.py keeps all `dagger` episodes;
the return filter does not apply to them).

Round r's episodes use reset seeds DAGGER_SEED + r * ROUND_SEEDS + i: disjoint from collection
(train: 0..., test: 1,000,000...) and evaluation (100,000...) seeds, and telling each shard's
round. A round is written one shard at a time, so a kill loses at most the shard in flight
and a re-run skips the seeds on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gato.data.episode import TaskSpec
from gato.envs.registry import Task
from gato.experts.noise import LabelledAction

DAGGER_SEED = 2_000_000
ROUND_SEEDS = 100_000


def round_seeds(round_: int, episodes: int) -> list[int]:
    if not 1 <= round_ < 1000 or episodes > ROUND_SEEDS:
        raise ValueError(f"DAgger round must be in [1, 1000) with at most {ROUND_SEEDS} episodes, "
                         f"got round {round_} with {episodes}")
    return [DAGGER_SEED + round_ * ROUND_SEEDS + i for i in range(episodes)]


def seed_round(seed: int) -> int | None:
    """The DAgger round a reset seed belongs to (None: not a DAgger seed)."""
    return (seed - DAGGER_SEED) // ROUND_SEEDS if seed >= DAGGER_SEED + ROUND_SEEDS else None


def check_labelable(tasks: list[Task]) -> None:
    """An error naming every task whose expert cannot label arbitrary states, and why."""
    bad = [f"{t.name} ({t.cannot_label})" for t in tasks if t.cannot_label]
    if bad:
        raise ValueError("DAgger needs an expert that labels any state; these cannot: " + "; ".join(bad))


@dataclass
class _Failed:
    """Label of a state where the expert raised: the episode is dropped."""

    error: str


class ExpertLabels:
    """An actor wrapper: each environment's expert labels the state; the inner actor's action is
    executed, or with probability `beta` (per step and environment) the expert's own: the
    original DAgger's mixture, which carries a learner that stalls (hovering beside a drawer)
    on to the states the task needs next. The inner actor is told what ran (`act(..., forced)`)
    so its history is the one that happened. An expert that fails on a state (the BabyAI bot
    can, rarely) labels it `_Failed`, and `collect_round` drops that episode."""

    def __init__(self, actor, experts: list, beta: float = 0.0):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"the expert's share beta must be in [0, 1], got {beta}")
        self.actor, self.experts, self.beta = actor, experts, beta
        self.rngs = [np.random.default_rng(r) for r in range(len(experts))]

    def reset(self, rows, seeds):
        self.actor.reset(rows, seeds)
        for r, s in zip(rows, seeds):
            self.experts[r].reset(s)
            self.rngs[r] = np.random.default_rng(None if s is None else [s, 0xBE7A])  # reproducible mixing

    def act(self, observations):
        labels = []
        for expert, obs in zip(self.experts, observations):
            try:
                labels.append(expert(obs))
            except Exception as e:  # an expert failure costs this episode only
                labels.append(_Failed(f"{type(e).__name__}: {e}"))
        if self.beta <= 0:
            actions = self.actor.act(observations)
        else:
            forced = [None if isinstance(label, _Failed) or rng.random() >= self.beta else label
                      for label, rng in zip(labels, self.rngs)]
            actions = self.actor.act(observations, forced=forced)
        return [LabelledAction(a, label) for a, label in zip(actions, labels)]

    def taken(self, row: int, action) -> None:
        if hasattr(self.experts[row], "taken"):
            self.experts[row].taken(action)


def collect_round(model, text, task: Task, root: Path, round_: int, episodes: int, *, num_envs: int = 8,
                  prompt=None, decode: str = "argmax", shard_episodes: int = 8, device: str = "cpu",
                  beta: float = 0.0, discrete_temperature: float | None = None) -> dict:
    """Roll out `model` on `task` for round `round_`'s seeds not yet on disk (executing the
    expert's action instead of the learner's with probability `beta`; discrete action tokens
    sampled at `discrete_temperature`, seeded by each shard's first seed), label every state with
    the expert, and write the episodes to ROOT/<domain>/<task>/dagger/. Returns counts and the
    mean return of the round's rollouts (the learner's own where beta is 0): those on disk,
    written by this run or by an earlier one that was killed, and those this run could not
    label, so a resumed round reports what the whole round scored."""
    from gato.agent import GatoAgent
    from gato.data.storage import DatasetWriter, TaskDataset
    from gato.rollout import run

    check_labelable([task])
    spec = TaskDataset(root, task.name).spec  # the demonstrations' spaces: labels must fit them
    envs = [task.make(sticky=True) for _ in range(num_envs)]
    if TaskSpec(task.name, envs[0].observation_space, envs[0].action_space) != spec:
        raise ValueError(f"{task.name}: the environment's spaces differ from the dataset's under {root}")
    experts = [task.make_expert(env) for env in envs]
    writer = DatasetWriter(root, spec, {}, split="dagger", shard_episodes=shard_episodes, executed=True)
    todo = [s for s in round_seeds(round_, episodes) if s not in writer.seeds_on_disk("dagger")]
    unlabelled, failed = [], 0
    try:
        for i in range(0, len(todo), shard_episodes):
            chunk = todo[i:i + shard_episodes]
            agent = GatoAgent(model, spec, min(num_envs, len(chunk)), text=text, prompt=prompt, decode=decode,
                              device=device, discrete_temperature=discrete_temperature, seed=chunk[0])
            actor = ExpertLabels(agent, experts, beta)
            for r in run(task, envs[:len(chunk)], actor, chunk):
                if any(isinstance(a, _Failed) for a in r.episode.actions):
                    failed += 1
                    unlabelled.append(r.ret)
                    continue
                writer.add(r.episode, seed=r.seed)
            writer.flush()
    finally:
        writer.close()
        for env in envs:
            env.close()
    seeds = set(round_seeds(round_, episodes))
    returns = [v for s, v in writer.seeded_returns().items() if s in seeds] + unlabelled
    return {"task": task.name, "round": round_, "beta": beta, "new_episodes": len(todo) - failed,
            "expert_failed": failed,
            "on_disk": writer.episodes_on_disk("dagger"),
            "learner_return": None if not returns else float(sum(returns) / len(returns)),
            "learner_episodes": len(returns)}
