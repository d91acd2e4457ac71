"""`gato minari import` and `gato minari export`: Farama's Minari offline RL datasets to and from our
dataset layout, on local files only (gato/data/minari_io.py holds the library; this module looks
tasks up in our registry and passes their spaces and episode cap in)."""

from __future__ import annotations

from pathlib import Path

from tyro.conf import Positional

from gato.data.minari_io import export_minari, import_minari
from gato.data.storage import task_folder
from gato.envs.registry import DOMAINS, SKIPPED, get_task, task_spec
from gato.io import folder_lock


def _not_ours(task: str) -> str:
    domain = task.split("/", 1)[0]
    if domain in SKIPPED:
        return f"its domain {domain!r} is not available here ({SKIPPED[domain]})"
    return "not a task of `gato tasks`" if domain not in DOMAINS else f"not one of the {domain} tasks"


def minari_import(source: Positional[str], task: str, out: Path = Path("data"), split: str = "train",
                  shard_episodes: int = 16, force: bool = False) -> dict:
    """Convert a local Minari dataset into a task folder of OUT, so `gato train --data OUT` trains
    on it. Nothing is downloaded.

    Args:
        source: the Minari dataset: its folder (or its data/ folder), or its id under the local
            Minari root (MINARI_DATASETS_PATH, else ~/.minari/datasets).
        task: our name for it, domain/task. A task of `gato tasks`: the dataset's spaces must be
            that environment's (an error names the space that differs). Any other name: the
            dataset's own spaces, which the token map must express (an error names the one it
            cannot).
        out: dataset root; the episodes go to OUT/<domain>/<task>/<split>/.
        split: train, test or dagger.
        shard_episodes: episodes per Parquet shard.
        force: replace the shards the split already holds (also: redo a killed import).
    """
    task_folder(out, task)  # a malformed name is an error before anything is read
    spec = task_spec(task)
    if spec is None:
        print(f"{task}: {_not_ours(task)}; the Minari dataset's own spaces are used")
    with folder_lock(out, "gato minari import"):
        result = import_minari(source, out, task, spec, split=split, shard_episodes=shard_episodes, force=force)
    print(f"imported {result.episodes} episodes ({result.steps} steps) of {source} as {task} into {out}")
    return {"task": task, "episodes": result.episodes, "steps": result.steps, "source": str(source), "out": str(out)}


def minari_export(root: Positional[Path], task: str, out: Path | None = None, dataset_id: str | None = None,
                  split: str = "train", force: bool = False) -> dict:
    """Write a task's episodes (one split of a dataset root made by `gato collect` or `gato
    minari import`) as a Minari dataset, with terminations, truncations and final observations.

    Args:
        root: dataset root.
        task: the task to export, domain/task.
        out: the Minari dataset folder to write (default: DATASET_ID under the local Minari root,
            MINARI_DATASETS_PATH else ~/.minari/datasets, where minari.load_dataset finds it).
        dataset_id: its Minari id, (namespace/)name-v<version> (default gato/<domain>/<task>/<split>-v0).
        split: train, test or dagger.
        force: replace a Minari dataset already at the destination.
    """
    try:
        max_steps = get_task(task).max_steps  # tells truncated from terminated where shards did not record it
    except ValueError:
        max_steps = None
    result = export_minari(root, task, out, dataset_id, split=split, max_steps=max_steps, force=force)
    notes = []
    if result.final_repeated:
        notes.append(f"{result.final_repeated} episodes recorded without a final observation repeat their last one")
    if result.ending_derived:
        notes.append(f"{result.ending_derived} episodes recorded without a truncation flag: " +
                     (f"truncated when {max_steps} steps long, else terminated" if max_steps is not None
                      else "marked terminated (no episode cap known)"))
    print(f"exported {result.episodes} episodes ({result.steps} steps) of {task} to {result.path} "
          f"(Minari id {result.dataset_id})" + "".join(f"\n  note: {n}" for n in notes))
    return {"dataset_id": result.dataset_id, "path": str(result.path), "episodes": result.episodes,
            "steps": result.steps, "final_repeated": result.final_repeated, "ending_derived": result.ending_derived}
