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
from gato.data.storage.format import (ACT_COLUMNS, CONTINUOUS, DISCRETE, FORMAT_VERSION, IMAGE,
                                      IMAGE_COL, OBS_COLUMNS, SPLITS, TEXT, _decode_column, _read_rows, columns,
                                      optional_columns, row_to_episode, space_from_json, space_to_json)
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

    def _prepare(self, row: dict) -> dict:
        """A stored row as `row_to_episode` reads it."""
        return row

    def _rows(self, split: str, names: list[str], limit: int | None = None, optional: tuple[str, ...] = ()):
        """(shard path, its rows: `names` and those of `optional` the shard has), shard by shard,
        skipping and reporting bad shards."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {SPLITS}")
        count = 0
        for path in self._files(split):
            if limit is not None and count >= limit:
                return
            try:
                rows = _read_rows(path, names, optional)
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
        return [ep for _, ep in self.seeded_episodes(split, limit)]

    def seeded_episodes(self, split: str = "train", limit: int | None = None) -> list[tuple[int | None, Episode]]:
        """(reset seed or None, episode) of each episode; a shard that does not decode is skipped
        and reported (`errors`)."""
        names = [c for c in columns(self.spec) if c != "seed"]
        out: list[tuple[int | None, Episode]] = []
        optional = optional_columns(self.spec) + ("seed",)
        for path, rows in self._rows(split, names, limit, optional):
            try:
                out += [(r.get("seed"), row_to_episode(self.spec, self._prepare(r))) for r in rows]
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
    e.g. train-00000-of-00002.parquet. `spec`: the task's spaces (our environment's, for a task
    we have: gato/data/jat.py); without it they are inferred from the data: continuous
    observations Box(-inf, inf, (n,), float32); discrete observations Box(min(0, lowest),
    highest, (n,), int64); images Box(0, 255, (H, W, C), uint8), where frames stacked along a
    last axis of another size than 1 or 3 (JAT's Atari: 84x84x4) keep the newest, (H, W, 1);
    text Text(all characters seen); discrete actions Discrete(max + 1) (MultiDiscrete per
    element when a list per step); continuous actions Box(-1, 1). A column that is not one of
    JAT's is an error naming the file and the column.
    """

    def __init__(self, path: str | Path, task_name: str | None = None, spec: TaskSpec | None = None):
        self.folder, self.errors = Path(path), []
        self.stacked: tuple[int, int, int] | None = None  # (H, W, frames) of stacked images
        files = sorted(self.folder.rglob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"{self.folder}: no Parquet files")
        present = _check_columns(files)
        if spec is None:
            obs, act, self.stacked = _infer_spaces(files)
            spec = TaskSpec(task_name or self.folder.name, obs, act)
        else:
            missing = [c for c in columns(spec)[:-2] if c not in present]
            if missing:
                raise ValueError(f"{files[0]}: no column {', '.join(map(repr, missing))}, which {spec.name}'s spaces "
                                 f"need ({spec.observation_space}; {spec.action_space})")
        self.spec = spec
        self.card = {"task": self.spec.name, "source": "jat", "observation_space": space_to_json(spec.observation_space),
                     "action_space": space_to_json(spec.action_space), "columns": columns(self.spec)[:-1]}

    def _files(self, split: str) -> list[Path]:
        return [f for f in sorted(self.folder.rglob("*.parquet"))
                if any(p.startswith(split) for p in f.relative_to(self.folder).parts)]

    def _prepare(self, row: dict) -> dict:
        if self.stacked is None:
            return row
        frames = np.asarray(row[IMAGE_COL], np.uint8)  # the newest frame of each stack
        return dict(row, **{IMAGE_COL: frames.reshape(len(frames), *self.stacked)[..., -1:]})


def jat_task_dataset(path: str | Path, task_name: str | None = None, spec: TaskSpec | None = None) -> JatTaskDataset:
    return JatTaskDataset(path, task_name, spec)


KNOWN_COLUMNS = frozenset(OBS_COLUMNS.values()) | frozenset(ACT_COLUMNS.values()) | {"rewards"}


def _check_columns(files: list[Path]) -> set[str]:
    """The columns of the files; an error naming the file and column for one JAT does not have."""
    present: set[str] = set()
    for f in files:
        try:
            names = pq.ParquetFile(f).schema_arrow.names
        except (OSError, pa.ArrowException) as e:
            raise ValueError(f"{f}: unreadable Parquet file: {e}") from e
        unknown = [c for c in names if c not in KNOWN_COLUMNS]
        if unknown:
            raise ValueError(f"{f}: column {unknown[0]!r} is not one of JAT's ({', '.join(sorted(KNOWN_COLUMNS))})")
        present |= set(names)
    return present


def _infer_spaces(files: list[Path]) -> tuple[gym.Space, gym.Space, tuple[int, int, int] | None]:
    """Observation and action spaces from the data, and the (H, W, frames) of stacked images."""
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
    stacked = None
    if image := seen.get(IMAGE_COL):
        if image[0].ndim not in (3, 4):
            raise ValueError(f"{files[0]}: images as flat buffers carry no shape; JAT's are nested lists")
        shape = image[0].shape[1:] if image[0].ndim == 4 else (*image[0].shape[1:], 1)
        if shape[2] not in (1, 3):  # frames stacked along the last axis: the newest one
            stacked, shape = shape, (*shape[:2], 1)
        obs[IMAGE] = spaces.Box(0, 255, shape, np.uint8)
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
    obs_space, act_space = (next(iter(d.values())) if len(d) == 1 else spaces.Dict(d) for d in (obs, act))
    return obs_space, act_space, stacked


def return_bar(expert_return: float, threshold: float = 0.8, random_return: float | None = None) -> float:
    """The least return an episode may have to be kept (the paper's "80% of the expert return").

    With a random reference, `threshold` of the way from random to expert: the expert-normalised
    scale the scores are reported on, so a return counts the same whatever its sign (reacher:
    random -42.8, expert -3.7, bar -11.5). Without one (or an expert no better than random),
    expert - (1 - threshold) * |expert|: 0.8 * expert for a positive return, 1.2 * expert for a
    negative one."""
    if random_return is not None and expert_return > random_return:
        return random_return + threshold * (expert_return - random_return)
    return expert_return - (1.0 - threshold) * abs(expert_return)


def filter_by_return(episodes: list[Episode], expert_return: float, threshold: float = 0.8,
                     random_return: float | None = None) -> tuple[list[Episode], int]:
    """Keep episodes whose return reaches `return_bar`. Returns (kept, number dropped)."""
    bar = return_bar(expert_return, threshold, random_return)
    kept = [e for e in episodes if float(np.sum(e.rewards, dtype=np.float64)) >= bar]
    return kept, len(episodes) - len(kept)
