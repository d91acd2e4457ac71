"""`gato collect`: record expert episodes into Parquet datasets, in parallel, resumable.

Targets named vl, vl/<set> or text build the vision-language and text sets instead
(gato.data.vl.sets); those are resumable too: a finished set is skipped.

Each episode keeps its final observation and whether a time limit ended it (format version 2).

Each episode is identified by its reset seed (train: seed, seed+1, ...; test: a disjoint
range). A run that is killed loses at most the shards in flight; run again, it skips the seeds
already on disk. An expert that crashes on an episode costs that episode only: it is counted
and the job goes on.
"""

from __future__ import annotations

import importlib.metadata
import json
import traceback
from pathlib import Path

from tqdm import tqdm

TEST_SEED_OFFSET = 1_000_000
SIMULATORS = ("gymnasium", "minigrid", "ale-py", "metaworld", "mujoco", "dm_control", "Box2D", "numpy")

_ENVS: dict[tuple, tuple] = {}  # per worker process: (task, noise, decoy) -> (task, env, expert)


def _expert(task, env, noise: float, decoy: float):
    from gato.experts.noise import NoisyExpert

    if decoy:
        from gato.envs.babyai import DecoyExpert
        return DecoyExpert(env, decoy)
    expert = task.make_expert(env)
    return NoisyExpert(expert, env.action_space, noise) if noise else expert


def _record(job: tuple[str, str, int, float, float]):
    """Worker: one expert episode. Returns (task, split, seed, episode or None, error or None)."""
    from gato.envs import get_task
    from gato.rollout import run_episode

    name, split, seed, noise, decoy = job
    key = (name, noise, decoy)
    try:
        if key not in _ENVS:
            task = get_task(name)
            env = task.make()
            _ENVS[key] = (task, env, _expert(task, env, noise, decoy))
        task, env, expert = _ENVS[key]
        return name, split, seed, run_episode(task, env, expert, seed=seed).episode, None
    except Exception as e:  # an expert or simulator failure costs this episode only
        _ENVS.pop(key, None)
        return name, split, seed, None, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"


def _check_decoy(task, env) -> None:
    """Decoys are BabyAI's (a bot planning for another object); an error names any other task."""
    if task.domain != "babyai":
        raise ValueError(f"task {task.name}: decoys need a BabyAI level whose mission names one object, "
                         f"not a {task.domain} task")
    from gato.envs.babyai import check_decoy
    env.reset(seed=0)
    check_decoy(env, task.name)


def _versions() -> dict[str, str]:
    out = {}
    for pkg in SIMULATORS:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def collect_tasks(targets: list[str], episodes: int, test_episodes: int, workers: int, out: Path, seed: int,
                     shard_episodes: int, progress: bool, noise: float | str, decoy: float = 0.0) -> dict:
    from gato.data.storage import DatasetWriter, task_folder
    from gato.data.episode import TaskSpec
    from gato.envs import resolve
    from gato.rollout import parallel_map
    from gato.experts.noise import DEFAULT_NOISE, check_noise

    tasks = resolve(targets)
    n_test = max(1, episodes // 10) if test_episodes < 0 else test_episodes
    train = [seed + i for i in range(episodes)]
    # Decoy episodes are a split of their own beside the demonstrations (and no test split).
    plan = {"decoy": train} if decoy else {"train": train, "test": [TEST_SEED_OFFSET + seed + i for i in range(n_test)]}
    writers, jobs = {}, []
    if isinstance(noise, str) and noise != "auto":
        raise ValueError(f"noise must be a number in [0, 1] or 'auto', got {noise!r}")
    if not 0.0 <= decoy <= 1.0:
        raise ValueError(f"decoy must be a probability in [0, 1], got {decoy}")
    if decoy and noise:
        raise ValueError("choose noise or decoy, not both: a decoy episode is already off the expert's path")
    specs = {}
    for task in tasks:  # check every task before anything is written
        env = task.make()
        specs[task.name] = TaskSpec(task.name, env.observation_space, env.action_space)
        if decoy:
            _check_decoy(task, env)
        env.close()
        level = DEFAULT_NOISE.get(task.domain, 0.0) if noise == "auto" else float(noise)
        check_noise(level, specs[task.name].action_space, task.name)
        specs[task.name] = (specs[task.name], level)
    what = "decoy" if decoy else "noise"
    for task in tasks:
        spec, level = specs[task.name]
        value = decoy or level
        card = {"expert": task.expert_kind, "description": task.description, "versions": _versions(), what: value}
        folder = task_folder(out, task.name)
        recorded = json.loads((folder / "card.json").read_text()) if (folder / "card.json").exists() else {}
        old = recorded.get(what, 0.0 if any((folder / split).is_dir() for split in plan) else value)
        if old != value:
            raise ValueError(f"{folder / 'card.json'} holds {task.name} collected with {what} {old}, not {value}: "
                             f"collect this {what} level into another --out")
        for split, seeds in plan.items():
            w = DatasetWriter(out, spec, card, split=split, shard_episodes=shard_episodes,
                              executed=level > 0 or decoy > 0, final=True)
            done = w.seeds_on_disk(split)
            writers[task.name, split] = w
            todo = [(task.name, split, s, level, decoy) for s in seeds if s not in done]
            if seeds and not todo:
                print(f"{task.name} {split}: the {len(seeds)} episodes asked for (seeds {seeds[0]}-{seeds[-1]}) are on "
                      f"disk already; more need a larger --episodes or another --seed")
            jobs += todo
    failures: dict[str, int] = {}
    bar = tqdm(total=len(jobs), disable=not progress, unit="episode")
    try:
        for name, split, s, episode, error in parallel_map(_record, jobs, workers):
            if error is not None:
                failures[name] = failures.get(name, 0) + 1
                bar.write(f"{name}: episode with seed {s} failed and is skipped: {error.splitlines()[0]}")
            else:
                writers[name, split].add(episode, seed=s)
            bar.update(1)
            bar.set_postfix(failed=sum(failures.values()))
    finally:
        bar.close()
        for w in writers.values():
            w.close()
    summary = {t.name: {split: writers[t.name, split].episodes_on_disk(split) for split in plan} for t in tasks}
    _write_diagnostics(out, [t.name for t in tasks if summary[t.name].get("train")])
    for name, counts in summary.items():
        extra = f", {failures[name]} failed" if name in failures else ""
        print(f"{name:<40} " + "  ".join(f"{split} {n:>5}" for split, n in counts.items()) + extra)
    return {"episodes": summary, "failures": failures}


def _write_diagnostics(out: Path, names: list[str]) -> None:
    """Each task card's "diagnostics": how much its demonstrations can teach (gato.data.diagnostics)."""
    from gato.config import get_preset
    from gato.data.diagnostics import dataset_stats
    from gato.data.storage import update_card
    from gato.tokenization.text import TextTokenizer

    tm, text = get_preset("gato-tiny").token_map, TextTokenizer.default()
    for name in names:
        update_card(out, name, {"diagnostics": dataset_stats(out, name, tm, text)})
