"""Demonstration prompts (paper, section 3.3): the end of a task's best demonstration, placed
before the episode so the model knows which task it is in and what success looks like.

They come from a dataset root (`--data`), or from the checkpoint itself: `gato export` stores a
small dataset `prompts/` (for each task of its training data, the final steps of its best
training episode, just enough to fill a prompt), so a shipped checkpoint is prompted as in the
paper with no dataset on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gato.data.episode import Episode, TaskSpec, text_of
from gato.data.layout import EpisodeLayout, Sequence

PROMPTS_DIR = "prompts"  # inside a checkpoint folder


def _train_episodes(data: Path | None, task_name: str, spec: TaskSpec | None) -> list[Episode]:
    """The task's training episodes under `data` ([] when there is no such folder or task)."""
    from gato.data.datasets import find_tasks, open_task

    if data is None or not Path(data).is_dir() or task_name not in find_tasks(Path(data)):
        return []
    return open_task(data, task_name, lambda _: spec).episodes("train")


def _ret(episode: Episode) -> float:
    return float(episode.rewards.sum())


def _best(data: Path, task_name: str, spec: TaskSpec | None = None) -> Episode | None:
    episodes = _train_episodes(data, task_name, spec)
    return max(episodes, key=_ret) if episodes else None


def prompt_tokens(model_cfg) -> int:
    """Prompt length: a quarter of the context, as training prompts."""
    return model_cfg.context // 4


def task_prompt(data: Path | None, task_name: str, spec: TaskSpec, model_cfg, text) -> Sequence | None:
    """The end of the task's best training episode under `data` (None: no data or no episodes)."""
    if data is None:
        return None
    best = _best(Path(data), task_name, spec)
    if best is None:
        return None
    return _tail(EpisodeLayout(spec, model_cfg.token_map, text, model_cfg.max_local_positions), best,
                 prompt_tokens(model_cfg))


def _tail(layout: EpisodeLayout, episode: Episode, size: int) -> Sequence:
    """The last `size` tokens of an episode, as a prompt (no loss)."""
    lengths = layout.step_lengths(episode)
    total = 1 + int(lengths.sum())
    return layout.window(episode, lengths, max(0, total - size), size).without_loss()


def matched_prompts(data: Path | None, task_name: str, spec: TaskSpec, model_cfg, text
                    ) -> Callable[[Any], Sequence] | None:
    """Per-episode prompts: for an episode's first observation, the end of the best training
    episode under `data` that carries the same text (BabyAI: the same mission), else the task's
    best: the prompts of models trained with `--prompt-match True`. `choose(None)` is the task's
    own prompt (`task_prompt`). None: no data or no episodes."""
    episodes = _train_episodes(data, task_name, spec)
    if not episodes:
        return None
    best: dict[tuple[str, ...], Episode] = {}
    for ep in episodes:
        key = text_of(ep.observations[0])
        if key not in best or _ret(ep) > _ret(best[key]):
            best[key] = ep
    fallback = max(episodes, key=_ret)
    layout = EpisodeLayout(spec, model_cfg.token_map, text, model_cfg.max_local_positions)
    size, made = prompt_tokens(model_cfg), {}

    def choose(observation) -> Sequence:
        key = text_of(observation)
        if key not in made:
            made[key] = _tail(layout, best.get(key, fallback), size)
        return made[key]
    return choose


def checkpoint_prompts(checkpoint: Path) -> Path | None:
    """The prompt dataset a checkpoint carries, if any."""
    folder = Path(checkpoint) / PROMPTS_DIR
    return folder if folder.is_dir() else None


def write_prompts(data: Path, out: Path, model_cfg, text, tasks: list[str] | None = None) -> list[str]:
    """For each task under `data` (or `tasks`), the final steps of its best training episode that
    a prompt needs, as a one-episode dataset under OUT/<domain>/<task>/. Returns the tasks written."""
    from gato.data.datasets import find_tasks, open_task
    from gato.data.storage import DatasetWriter
    from gato.envs.registry import task_spec

    written = []
    for name in tasks or find_tasks(Path(data)):
        spec = open_task(data, name, task_spec).spec
        best = _best(Path(data), name, spec)
        if best is None:
            continue
        layout = EpisodeLayout(spec, model_cfg.token_map, text, model_cfg.max_local_positions)
        lengths = layout.step_lengths(best)
        # the fewest final steps whose tokens fill the prompt (BOS is not part of it)
        need = int(np.searchsorted(np.cumsum(lengths[::-1]), prompt_tokens(model_cfg))) + 1
        k = min(len(best), need)
        tail = Episode(best.observations[-k:], best.actions[-k:], best.rewards[-k:])
        w = DatasetWriter(out, spec, {"prompt_of": str(data), "steps_from_end": k}, split="train",
                          shard_episodes=1)
        w.add(tail)
        w.close()
        written.append(name)
    return written
