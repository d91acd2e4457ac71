"""Writing a task's episodes: atomic shards, a card, resumable by seed."""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gato.data.episode import Episode, TaskSpec
from gato.data.storage.format import (DICTIONARY_COLUMNS, EXECUTED_COLUMNS, FORMAT_VERSION, IMAGE, IMAGE_COLUMNS,
                                      SPLITS, TRUNCATED, _column, _layout, _leaf_path, _read_rows, columns,
                                      episode_to_row, space_to_json)
from gato.io import atomic_write

# ---------------------------------------------------------------- writer

def task_folder(root: str | Path, task_name: str) -> Path:
    parts = task_name.split("/")
    if len(parts) != 2 or not all(parts) or ".." in parts:
        raise ValueError(f"task name {task_name!r} must be 'domain/task'")
    return Path(root, *parts)


def _load_card(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no dataset card (task not collected under this root?)") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: corrupt dataset card: {e}") from e


def _ranges(seeds: set[int]) -> list[list[int]]:
    """Sorted seeds as [first, last] runs."""
    out: list[list[int]] = []
    for s in sorted(seeds):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def _summary(returns: list[float]) -> dict[str, float]:
    r = np.asarray(returns, np.float64)
    return {"count": len(r), "mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()), "max": float(r.max())}


def _scan(folder: Path) -> tuple[list[float], dict[int, float]]:
    """Returns of the shards in a split folder, and those of seeded episodes by reset seed
    (unreadable shards: warned about, skipped)."""
    returns, by_seed = [], {}
    for path in sorted(folder.glob("shard-*.parquet")):
        try:
            rows = _read_rows(path, ["rewards", "seed"])
        except (OSError, pa.ArrowException, ValueError) as e:
            warnings.warn(f"{path}: unreadable shard left as is: {e}")
            continue
        for r in rows:
            returns.append(float(r["rewards"].sum(dtype=np.float64)))
            if r["seed"] is not None:
                by_seed[r["seed"]] = returns[-1]
    return returns, by_seed


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class DatasetWriter:
    """Appends episodes of one task and split as shards of `shard_episodes` episodes.

    `card` adds fields to card.json, e.g. {"expert": "bot", "packages": {"minigrid": "3.2.0"}}.
    Reopening a folder resumes: the next shard index follows the last one on disk. card.json is
    rewritten after a shard when `card_interval_s` have passed since its last write, and on close.
    `final`: shards also hold each episode's final observation and whether it was truncated
    (every episode added must carry `final_observation`; `truncated` may be None)."""

    def __init__(self, root: str | Path, spec: TaskSpec, card: dict, split: str = "train", shard_episodes: int = 16,
                 card_interval_s: float = 1.0, executed: bool = False, final: bool = False):
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {SPLITS}")
        self.spec, self.split, self.shard_episodes = spec, split, shard_episodes
        self.card_interval_s, self._card_stale = card_interval_s, False
        self.folder, self.columns = task_folder(root, spec.name), columns(spec, executed, final)
        self.executed = executed  # shards also hold the executed actions (labels where none differ)
        self.final = final
        self.card_path, self._buffer = self.folder / "card.json", []
        old = _load_card(self.card_path) if self.card_path.exists() else {}
        obs, act = space_to_json(spec.observation_space), space_to_json(spec.action_space)
        if old and (old.get("task"), old.get("observation_space"), old.get("action_space")) != (spec.name, obs, act):
            raise ValueError(f"{self.card_path} describes another task or other spaces than {spec}")
        packages = {"gymnasium": gym.__version__, "numpy": np.__version__, "pyarrow": pa.__version__}
        self.card = {**old, **card, "format_version": FORMAT_VERSION, "task": spec.name,
                     "observation_space": obs, "action_space": act, "columns": columns(spec),
                     "packages": {**packages, **card.get("packages", {})}, "created": old.get("created", _now())}
        layout = _layout(spec.observation_space, True)
        if IMAGE in layout:
            h, w = layout[IMAGE][0][1].shape[:2]
            self.card["image_shape"] = [h, w, int(np.prod(layout[IMAGE][0][1].shape)) // (h * w)]
        (self.folder / split).mkdir(parents=True, exist_ok=True)
        for stale in (self.folder / split).glob(".*.tmp"):  # left by a killed writer
            stale.unlink()
        self._returns, self._by_seed = _scan(self.folder / split)
        done = [int(p.stem.split("-")[1]) for p in (self.folder / split).glob("shard-*.parquet")]
        self._next = max(done, default=-1) + 1
        self._write_card()

    def add(self, episode: Episode, seed: int | None = None) -> None:
        if self.executed and episode.executed is None:
            episode = dataclasses.replace(episode, executed=episode.actions)
        if self.final and episode.final_observation is None:
            raise ValueError(f"{self.folder}: this writer keeps final observations; the episode has none")
        row = episode_to_row(self.spec, episode)
        if not self.executed:
            for c in EXECUTED_COLUMNS.values():
                row.pop(c, None)
        row["seed"] = seed
        if self.final:
            row.setdefault(TRUNCATED, None)  # not known
        self._buffer.append(row)
        if len(self._buffer) >= self.shard_episodes:
            self.flush()

    def flush(self) -> None:
        """Write the buffered episodes as the next shard (atomically), then update the card."""
        if not self._buffer:
            return
        arrays = [_column(c, [r[c] for r in self._buffer]) for c in self.columns]
        meta = {c: {"shape": json.dumps(self.card.get("image_shape"))} for c in IMAGE_COLUMNS}
        table = pa.Table.from_arrays(arrays, schema=pa.schema(
            [pa.field(c, a.type, metadata=meta.get(c)) for c, a in zip(self.columns, arrays)]))
        path = self.folder / self.split / f"shard-{self._next:05d}.parquet"
        dictionary = [_leaf_path(c, a.type) for c, a in zip(self.columns, arrays) if c in DICTIONARY_COLUMNS]
        atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd", use_dictionary=dictionary))
        self._next += 1
        for r in self._buffer:
            self._returns.append(float(r["rewards"].sum(dtype=np.float64)))
            if r["seed"] is not None:
                self._by_seed[r["seed"]] = self._returns[-1]
        self._buffer, self._card_stale = [], True
        if time.monotonic() - self._card_time >= self.card_interval_s:
            self._write_card()

    def _write_card(self) -> None:
        """Rewrites this split's entry; the other split's is kept as on disk (its writer may be open too)."""
        on_disk = _load_card(self.card_path).get("splits", {}) if self.card_path.exists() else {}
        if self._returns:
            on_disk[self.split] = {"episodes": len(self._returns), "seeds": _ranges(set(self._by_seed)),
                                   "returns": _summary(self._returns)}
        self.card["splits"] = on_disk
        self.card["updated"] = _now()
        text = json.dumps(self.card, indent=1)
        atomic_write(self.card_path, lambda tmp: tmp.write_text(text))
        self._card_time, self._card_stale = time.monotonic(), False

    def episodes_on_disk(self, split: str | None = None) -> int:
        return len(self._returns if split in (None, self.split) else _scan(self.folder / split)[0])

    def seeds_on_disk(self, split: str | None = None) -> set[int]:
        return set(self._by_seed if split in (None, self.split) else _scan(self.folder / split)[1])

    def seeded_returns(self) -> dict[int, float]:
        """This split's returns by reset seed: the episodes on disk when it opened and those written since."""
        return dict(self._by_seed)

    def close(self) -> None:
        self.flush()
        if self._card_stale:
            self._write_card()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # complete episodes are kept even when the collection failed


def update_card(root: str | Path, task_name: str, fields: dict) -> None:
    """Add or replace top-level fields of a task's card.json (atomically)."""
    path = task_folder(root, task_name) / "card.json"
    card = _load_card(path) | fields
    text = json.dumps(card, indent=1)
    atomic_write(path, lambda tmp: tmp.write_text(text))
