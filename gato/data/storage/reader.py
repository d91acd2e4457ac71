"""Reading episodes: our shards (TaskDataset) and local copies of JAT's (JatTaskDataset)."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from gymnasium import spaces

from gato.data.episode import Episode, TaskSpec
from gato.data.storage.format import (ACT_COLUMNS, CONTINUOUS, DISCRETE, EXECUTED_COLUMNS, FORMAT_VERSION, IMAGE,
                                      IMAGE_COL, OBS_COLUMNS, SPLITS, TEXT, _decode_column, _read_rows, columns,
                                      row_to_episode, space_from_json, space_to_json)
from gato.data.storage.writer import _load_card, task_folder

# ---------------------------------------------------------------- readers

class TaskDataset:
    """One task's episodes on disk. Unreadable shards are skipped, listed in `.errors`, and warned about."""

    def __init__(self, root: str | Path, task_name: str):
        self.folder = task_folder(root, task_name)
        card_path = self.folder / "card.json"
        self.card = _load_card(card_path)
        if self.card.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            raise ValueError(f"{card_path}: format version {self.card['format_version']} is newer than this reader's")
        try:
            self.spec = TaskSpec(self.card["task"], space_from_json(self.card["observation_space"]),
                                 space_from_json(self.card["action_space"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{card_path}: bad dataset card: {e!r}") from e
        self.errors: list[str] = []

    def _files(self, split: str) -> list[Path]:
        return sorted((self.folder / split).glob("shard-*.parquet"))

    def _rows(self, split: str, names: list[str], limit: int | None = None):
        """(shard path, its rows), shard by shard, skipping and reporting bad shards."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {SPLITS}")
        count = 0
        for path in self._files(split):
            if limit is not None and count >= limit:
                return
            try:
                rows = _read_rows(path, names, tuple(EXECUTED_COLUMNS.values()))
            except (OSError, pa.ArrowException, ValueError) as e:
                self._error(f"{path}: {e}")
                continue
            count += len(rows)
            yield path, rows

    def _error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)
        warnings.warn(message)

    def episodes(self, split: str = "train", limit: int | None = None) -> list[Episode]:
        names = [c for c in columns(self.spec) if c != "seed"]
        out: list[Episode] = []
        for path, rows in self._rows(split, names, limit):
            try:
                out += [row_to_episode(self.spec, r) for r in rows]
            except ValueError as e:
                self._error(f"{path}: {e}")
        return out[:limit]

    def returns(self, split: str = "train") -> np.ndarray:
        """Each episode's return (sum of rewards, float64)."""
        return np.asarray([r["rewards"].sum(dtype=np.float64) for _, rows in self._rows(split, ["rewards"])
                           for r in rows], np.float64)


class JatTaskDataset(TaskDataset):
    """A local copy of one task of JAT's dataset: Parquet files with JAT's columns and no card.

    Split files are those whose name (or a folder on their path) starts with the split's name,
    e.g. train-00000-of-00002.parquet. Spaces are inferred from the data: continuous observations
    Box(-inf, inf, (n,), float32); discrete observations Box(min(0, lowest), highest, (n,), int64);
    images Box(0, 255, (H, W, C), uint8); text Text(all characters seen); discrete actions
    Discrete(max + 1) (MultiDiscrete per element when a list per step); continuous actions Box(-1, 1).
    """

    def __init__(self, path: str | Path, task_name: str | None = None):
        self.folder, self.errors = Path(path), []
        files = sorted(self.folder.rglob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"{self.folder}: no Parquet files")
        obs, act = _infer_spaces(files)
        self.spec = TaskSpec(task_name or self.folder.name, obs, act)
        self.card = {"task": self.spec.name, "source": "jat", "observation_space": space_to_json(obs),
                     "action_space": space_to_json(act), "columns": columns(self.spec)[:-1]}

    def _files(self, split: str) -> list[Path]:
        return [f for f in sorted(self.folder.rglob("*.parquet"))
                if any(p.startswith(split) for p in f.relative_to(self.folder).parts)]


def jat_task_dataset(path: str | Path, task_name: str | None = None) -> JatTaskDataset:
    return JatTaskDataset(path, task_name)


def _infer_spaces(files: list[Path]) -> tuple[gym.Space, gym.Space]:
    seen: dict[str, list] = {}
    for f in files:
        try:
            pf = pq.ParquetFile(f)
        except (OSError, pa.ArrowException) as e:
            raise ValueError(f"{f}: unreadable Parquet file: {e}") from e
        for c in [c for c in pf.schema_arrow.names if c in OBS_COLUMNS.values() or c in ACT_COLUMNS.values()]:
            if c == IMAGE_COL:  # the first frame is enough
                batch = next(pf.iter_batches(batch_size=1, columns=[c]))
                seen.setdefault(c, []).append(_decode_column(c, pa.chunked_array([batch.column(0)]))[0])
            else:
                seen.setdefault(c, []).extend(_decode_column(c, pf.read(columns=[c]).column(0)))
    obs, act = {}, {}
    if text := seen.get(OBS_COLUMNS[TEXT]):
        chars = sorted({ch for ep in text for s in ep for ch in s})
        obs[TEXT] = spaces.Text(max(4096, max(len(s) for ep in text for s in ep)), min_length=0, charset="".join(chars))
    if image := seen.get(IMAGE_COL):
        if image[0].ndim not in (3, 4):
            raise ValueError(f"{files[0]}: images as flat buffers carry no shape; JAT's are nested lists")
        obs[IMAGE] = spaces.Box(0, 255, image[0].shape[1:] if image[0].ndim == 4 else (*image[0].shape[1:], 1), np.uint8)
    if disc := seen.get(OBS_COLUMNS[DISCRETE]):
        v = np.concatenate(disc)
        obs[DISCRETE] = spaces.Box(min(0, int(v.min())), int(v.max()), (v.shape[1],), np.int64)
    if cont := seen.get(OBS_COLUMNS[CONTINUOUS]):
        obs[CONTINUOUS] = spaces.Box(-np.inf, np.inf, (cont[0].shape[1],), np.float32)
    if disc := seen.get(ACT_COLUMNS[DISCRETE]):
        v = np.concatenate(disc)
        act[DISCRETE] = spaces.Discrete(int(v.max()) + 1) if v.ndim == 1 else spaces.MultiDiscrete(v.max(0) + 1)
    if cont := seen.get(ACT_COLUMNS[CONTINUOUS]):
        act[CONTINUOUS] = spaces.Box(-1.0, 1.0, (cont[0].shape[1],), np.float32)
    if not obs or not act:
        raise ValueError(f"{files[0].parent}: no JAT observation or action columns found")
    return tuple(next(iter(d.values())) if len(d) == 1 else spaces.Dict(d) for d in (obs, act))


def filter_by_return(episodes: list[Episode], expert_return: float, threshold: float = 0.8) -> tuple[list[Episode], int]:
    """Keep episodes whose return is at least `threshold` of the expert's (the paper's 80% rule).

    The bar is expert - (1 - threshold) * |expert|: 0.8 * expert for a positive expert return,
    and 1.2 * expert (lower, not higher) for a negative one. Returns (kept, number dropped)."""
    bar = expert_return - (1.0 - threshold) * abs(expert_return)
    kept = [e for e in episodes if float(np.sum(e.rewards, dtype=np.float64)) >= bar]
    return kept, len(episodes) - len(kept)
