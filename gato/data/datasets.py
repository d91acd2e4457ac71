"""Datasets on disk -> training sources: one ControlSource per task folder, filtered by return.

SPEC: keep only episodes whose return is at least 80% of the expert's; we measure the 80% from
the random to the expert return (`return_bar`, docs/design.md). The expert return is the task's
reference score (gato/envs/scores.json) when it has one, else the mean return of the task's own
training split. Episodes of the `dagger` split (`gato dagger`) and the `decoy` split
(`gato collect --decoy`) are all kept. Task
folders are ours (`gato collect`) or local copies of JAT's (gato/data/jat.py).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gato.data.episode import TaskSpec
from gato.data.jat import jat_folders
from gato.data.sampling import ControlSource
from gato.data.storage import JatTaskDataset, TaskDataset, filter_by_return, return_bar, task_folder
from gato.data.vl.formats import read_json
from gato.tokenization.vocab import TokenMap


def find_tasks(root: Path) -> list[str]:
    """Task names of every `<root>/<domain>/<task>/card.json` and of every JAT task folder in ROOT
    (or ROOT itself: gato/data/jat.py), sorted; vision-language and text sets (cards with a
    "kind") are not tasks."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"dataset folder {root} does not exist (make one with `gato collect`)")
    ours = {f"{p.parent.parent.name}/{p.parent.name}" for p in root.glob("*/*/card.json") if "kind" not in read_json(p)}
    return sorted(ours | set(jat_folders(root)))


def open_task(root: Path, name: str, spec_of: Callable[[str], TaskSpec | None] | None = None) -> TaskDataset:
    """Task `name` of a dataset root: our folder `<root>/<domain>/<task>/`, else a JAT task folder
    mapped to that name, read with the spaces `spec_of(name)` gives (our environment's; None: the
    spaces are inferred from the data)."""
    root = Path(root)
    if (task_folder(root, name) / "card.json").exists():
        return TaskDataset(root, name)
    folder = jat_folders(root).get(name) if root.is_dir() else None
    if folder is None:
        return TaskDataset(root, name)  # its error names the missing card
    return JatTaskDataset(folder, name, spec_of(name) if spec_of else None)


def control_sources(root: Path, tm: TokenMap, text, *, tasks: tuple[str, ...] = (), threshold: float = 0.8,
                    prompt_tokens: int = 256, prompt_prob: float = 0.25, max_local_positions: int = 512,
                    start_prob: float = 0.0, max_episodes: int = 0, verbose: bool = True, prompt_match: bool = False,
                    spec_of: Callable[[str], TaskSpec | None] | None = None) -> list[ControlSource]:
    """One source per task of a dataset root (all of them, or `tasks`), with episodes filtered;
    `spec_of` gives the spaces of JAT tasks we have an environment for (`open_task`)."""
    from gato.envs.scores import load_scores

    have = find_tasks(root)
    names = list(tasks) or have
    if not names:
        raise ValueError(f"no task datasets under {root} (expected <domain>/<task>/card.json)")
    for name in names:
        if name not in have:
            close = difflib.get_close_matches(name, have, n=5, cutoff=0.5)
            raise ValueError(f"task {name!r} is not collected under {root}" + (
                f"; did you mean: {', '.join(close)}" if close else f" (it holds {len(have)} tasks)"))
    ref = load_scores()
    out = []
    for name in names:
        ds = open_task(root, name, spec_of)
        episodes = ds.episodes("train", limit=max_episodes or None)
        if not episodes:
            only = [split for split in ("decoy", "dagger") if (ds.folder / split).is_dir()]
            raise ValueError(f"{name}: no training episodes under {root}" +
                             (f" ({'; '.join(ds.errors)})" if ds.errors else "") +
                             (f"; it holds only {' and '.join(only)} episodes, which train beside demonstrations: "
                              f"collect the task's demonstrations into the same folder first" if only else ""))
        expert = ref.get(name, {}).get("expert", {}).get("mean", float(np.mean([e.rewards.sum() for e in episodes])))
        random = ref.get(name, {}).get("random", {}).get("mean")
        kept, dropped = filter_by_return(episodes, expert, threshold, random)
        bar = (f"{threshold:.0%} of the expert return {expert:.2f}" + ("" if random is None else
               f" from random {random:.2f}") + f" (a return of {return_bar(expert, threshold, random):.2f})")
        if verbose:
            print(f"{name}: {len(kept)} episodes kept, {dropped} below {bar}")
        if not kept:
            best = max(float(e.rewards.sum()) for e in episodes)
            raise ValueError(f"{name}: all {len(episodes)} episodes are below {bar}; the best returned {best:.2f}. "
                             f"Collect more episodes, or lower the bar (`gato train --min-return`)")
        # DAgger and decoy episodes: states the expert did not choose, with the expert's labels.
        # Their return is the behaviour's, so the return filter does not apply.
        for split, what in (("dagger", "DAgger episodes (expert-labelled learner states)"),
                            ("decoy", "decoy episodes (bot-labelled, heading for an unnamed object)")):
            relabelled = ds.episodes(split) if (ds.folder / split).is_dir() else []
            if relabelled and verbose:
                print(f"{name}: {len(relabelled)} {what}")
            kept += relabelled
        _check_finite(name, root, kept)
        out.append(ControlSource(ds.spec, kept, tm, text, prompt_tokens=prompt_tokens, prompt_prob=prompt_prob,
                                 max_local_positions=max_local_positions, start_prob=start_prob,
                                 prompt_match=prompt_match))
    return out


def _non_finite(x) -> bool:
    if isinstance(x, dict):
        return any(_non_finite(v) for v in x.values())
    if isinstance(x, (tuple, list)):
        return any(_non_finite(v) for v in x)
    if isinstance(x, str):
        return False
    a = np.asarray(x)
    return a.dtype.kind in "fc" and not bool(np.isfinite(a).all())


def _check_finite(name: str, root: Path, episodes) -> None:
    """A NaN or infinity in a dataset is an error now, naming the task, episode and step, not a
    failed batch hundreds of steps into training."""
    for i, ep in enumerate(episodes):
        for part, values in (("observation", ep.observations), ("action", ep.actions)):
            try:
                bad = _non_finite(np.asarray(values, dtype=np.float64))
            except (ValueError, TypeError):  # ragged or structured: step by step
                bad = any(_non_finite(v) for v in values)
            if bad:
                step = next(t for t, v in enumerate(values) if _non_finite(v))
                raise ValueError(f"{name} under {root}: episode {i} has a non-finite {part} at step {step}; "
                                 "remove or re-collect that episode")
        if not np.isfinite(ep.rewards).all():
            raise ValueError(f"{name} under {root}: episode {i} has a non-finite reward at step "
                             f"{int(np.argmin(np.isfinite(ep.rewards)))}")
