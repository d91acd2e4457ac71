"""Expert episodes on disk: Parquet shards in JAT's column layout, one episode per row.

Why this layout:
- JAT compatibility: the columns are JAT's (text_observations, image_observations,
  discrete_observations, continuous_observations, discrete_actions, continuous_actions, rewards),
  the final observation is not stored, and `jat_task_dataset` reads a local copy of JAT's
  published Parquet files through the same decoding code as our own shards.
- Atomic shards: every shard and card.json is written to a temporary file in its folder, then
  os.replace'd: a killed collection leaves complete shards only. The card's per-split summary
  is refreshed at most once a second while shards are written (replacing an existing file can
  cost milliseconds, as much as a shard of CartPole), and always on close; a reopened writer
  recomputes it from the shards.
- Resumable: one extra int64 column, `seed` (the episode's reset seed, null if none), lets a
  reopened `DatasetWriter` know which episodes are done; it continues with the next shard index.

Layout: <root>/<domain>/<task>/card.json and <root>/<domain>/<task>/<split>/shard-NNNNN.parquet.
Images are written as list<binary>, one raw uint8 (H, W, C) buffer per step (shape in the card
and in the field metadata), which reads about 5x faster than JAT's nested
list<list<list<list<uint8>>>>; the reader accepts that layout and Hugging Face Image structs too.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from gymnasium import spaces

from gato.data.episode import Episode, TaskSpec
from gato.io import atomic_write
from gato.tokenization.spaces import is_image_space, is_integer_box

FORMAT_VERSION = 1
SPLITS = ("train", "test", "dagger")  # dagger: learner-visited states labelled by the expert
TEXT, IMAGE, DISCRETE, CONTINUOUS = "text", "image", "discrete", "continuous"
OBS_COLUMNS = {TEXT: "text_observations", IMAGE: "image_observations",
               DISCRETE: "discrete_observations", CONTINUOUS: "continuous_observations"}
ACT_COLUMNS = {DISCRETE: "discrete_actions", CONTINUOUS: "continuous_actions"}
# The actions the environment ran where they differ from the labels (DAgger: the learner's).
EXECUTED_COLUMNS = {k: f"executed_{v}" for k, v in ACT_COLUMNS.items()}
IMAGE_COL = OBS_COLUMNS[IMAGE]
# Dictionary-encoded columns: their values repeat. Floats and frames rarely do: a dictionary there
# costs half the write time of a shard and makes the file larger.
DICTIONARY_COLUMNS = (OBS_COLUMNS[TEXT], OBS_COLUMNS[DISCRETE], ACT_COLUMNS[DISCRETE])


# ---------------------------------------------------------------- spaces <-> JSON

def _enc(v: Any) -> Any:  # JSON has no inf / nan: write them as strings
    if isinstance(v, list):
        return [_enc(x) for x in v]
    return str(v) if isinstance(v, float) and not math.isfinite(v) else v


def _dec(v: Any) -> Any:
    return [_dec(x) for x in v] if isinstance(v, list) else float(v) if isinstance(v, str) else v


def _bounds(a: np.ndarray) -> Any:
    return _enc(a.flat[0].item() if a.size and (a == a.flat[0]).all() else a.tolist())


def space_to_json(space: gym.Space) -> dict:
    """A JSON-able description of a space; `space_from_json` inverts it."""
    t = type(space).__name__
    if isinstance(space, spaces.Box):
        return {"type": t, "dtype": space.dtype.name, "shape": list(space.shape),
                "low": _bounds(space.low), "high": _bounds(space.high)}
    if isinstance(space, spaces.Discrete):
        return {"type": t, "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": t, "nvec": space.nvec.tolist(), "start": space.start.tolist(), "dtype": space.dtype.name}
    if isinstance(space, spaces.MultiBinary):
        return {"type": t, "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": t, "spaces": [[k, space_to_json(s)] for k, s in space.spaces.items()]}
    if isinstance(space, spaces.Tuple):
        return {"type": t, "spaces": [space_to_json(s) for s in space.spaces]}
    if isinstance(space, spaces.Text):
        return {"type": t, "min_length": space.min_length, "max_length": space.max_length,
                "charset": "".join(sorted(space.character_set))}
    raise TypeError(f"cannot describe space type {t} ({space}) as JSON")


def space_from_json(d: dict) -> gym.Space:
    t = d["type"]
    if t == "Box":
        dtype, shape = np.dtype(d["dtype"]), tuple(d["shape"])
        low, high = (np.broadcast_to(np.asarray(_dec(d[k]), dtype), shape).copy() for k in ("low", "high"))
        return spaces.Box(low, high, shape, dtype)
    if t == "Discrete":
        return spaces.Discrete(d["n"], start=d["start"])
    if t == "MultiDiscrete":
        return spaces.MultiDiscrete(d["nvec"], dtype=d["dtype"], start=d["start"])
    if t == "MultiBinary":
        return spaces.MultiBinary(d["n"])
    if t == "Dict":
        return spaces.Dict([(k, space_from_json(s)) for k, s in d["spaces"]])
    if t == "Tuple":
        return spaces.Tuple([space_from_json(s) for s in d["spaces"]])
    if t == "Text":
        return spaces.Text(d["max_length"], min_length=d["min_length"], charset=d["charset"])
    raise TypeError(f"unknown space type {t!r} in {d}")


# ---------------------------------------------------------------- Episode <-> row

def _is_image(space: spaces.Box) -> bool:
    """The tokenizer's images, and any uint8 (H, W, C) with H, W >= 16 (JAT's Atari: 84x84x4)."""
    s = space.shape
    return is_image_space(space) or (space.dtype == np.uint8 and len(s) == 3 and min(s[:2]) >= 16)


def _leaves(space: gym.Space, path: tuple = ()) -> list[tuple[tuple, gym.Space]]:
    """Leaf spaces in tokenizer order: Dict keys sorted, Tuple in order."""
    if isinstance(space, spaces.Dict):
        return [x for k in sorted(space.spaces) for x in _leaves(space.spaces[k], path + (k,))]
    if isinstance(space, spaces.Tuple):
        return [x for i, s in enumerate(space.spaces) for x in _leaves(s, path + (i,))]
    return [(path, space)]


def _layout(space: gym.Space, observation: bool) -> dict[str, list[tuple[tuple, gym.Space]]]:
    """Leaves grouped by column kind (text, image, discrete, continuous)."""
    out: dict[str, list] = {}
    for path, leaf in _leaves(space):
        if isinstance(leaf, spaces.Text):
            if not observation:
                raise ValueError(f"Text actions cannot be stored ({space})")
            kind = TEXT
        elif isinstance(leaf, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
            kind = DISCRETE
        elif isinstance(leaf, spaces.Box):
            kind = IMAGE if observation and _is_image(leaf) else DISCRETE if is_integer_box(leaf) else CONTINUOUS
        else:
            raise TypeError(f"cannot store space type {type(leaf).__name__} ({leaf})")
        out.setdefault(kind, []).append((path, leaf))
    for kind in (TEXT, IMAGE):
        if len(out.get(kind, [])) > 1:
            raise ValueError(f"{space} has {len(out[kind])} {kind} parts; the format holds at most one")
    return out


def columns(spec: TaskSpec, executed: bool = False) -> list[str]:
    """The columns of a task's shards: observation, action, [executed action,] rewards, seed."""
    obs, act = _layout(spec.observation_space, True), _layout(spec.action_space, False)
    ex = [EXECUTED_COLUMNS[k] for k in ACT_COLUMNS if k in act] if executed else []
    return ([OBS_COLUMNS[k] for k in OBS_COLUMNS if k in obs] + [ACT_COLUMNS[k] for k in ACT_COLUMNS if k in act]
            + ex + ["rewards", "seed"])


def _pick(values: list, path: tuple) -> list:
    """The leaf at `path` of every step (the steps themselves for a space without parts)."""
    for key in path:
        values = [v[key] for v in values]
    return values


def _encode(space: gym.Space, values: list, observation: bool, names: dict | None = None) -> dict[str, Any]:
    row, n = {}, len(values)
    names = names or (OBS_COLUMNS if observation else ACT_COLUMNS)
    for kind, leaves in _layout(space, observation).items():
        if kind == TEXT:
            row[names[kind]] = [str(v) for v in _pick(values, leaves[0][0])]
        elif kind == IMAGE:
            path, leaf = leaves[0]
            h, w = leaf.shape[:2]
            row[names[kind]] = np.array(_pick(values, path), np.uint8).reshape(n, h, w, -1)
        else:
            dtype = np.float32 if kind == CONTINUOUS else np.int64
            parts = [np.asarray(_pick(values, p)).reshape(n, -1) for p, _ in leaves]
            arr = parts[0] if len(parts) == 1 else np.concatenate(parts, 1)
            row[names[kind]] = arr.astype(dtype)[:, 0] if isinstance(space, spaces.Discrete) else arr.astype(dtype)
    return row


def episode_to_row(spec: TaskSpec, ep: Episode) -> dict[str, Any]:
    """One episode as one row: column name -> per-step values (numpy arrays; text as a list)."""
    row = _encode(spec.observation_space, ep.observations, True)
    row.update(_encode(spec.action_space, ep.actions, False))
    if ep.executed is not None:
        row.update(_encode(spec.action_space, ep.executed, False, EXECUTED_COLUMNS))
    row["rewards"] = np.asarray(ep.rewards, np.float32)
    return row


def _assemble(space: gym.Space, path: tuple, leaf_values: dict[tuple, list], n: int) -> list:
    if isinstance(space, spaces.Dict):
        parts = {k: _assemble(s, path + (k,), leaf_values, n) for k, s in space.spaces.items()}
        return [{k: p[t] for k, p in parts.items()} for t in range(n)]
    if isinstance(space, spaces.Tuple):
        parts = [_assemble(s, path + (i,), leaf_values, n) for i, s in enumerate(space.spaces)]
        return [tuple(p[t] for p in parts) for t in range(n)]
    return leaf_values[path]


def _decode(space: gym.Space, row: dict[str, Any], observation: bool, n: int, names: dict | None = None) -> list:
    leaf_values, names = {}, names or (OBS_COLUMNS if observation else ACT_COLUMNS)
    for kind, leaves in _layout(space, observation).items():
        name = names[kind]
        if row.get(name) is None:
            raise ValueError(f"missing column {name!r}")
        if kind == TEXT:
            if len(row[name]) != n:
                raise ValueError(f"column {name!r}: {len(row[name])} steps, rewards have {n}")
            leaf_values[leaves[0][0]] = [str(s) for s in row[name]]
            continue
        dtype = {IMAGE: np.uint8, DISCRETE: np.int64, CONTINUOUS: np.float32}[kind]
        arr = np.asarray(row[name], dtype)
        widths = [int(np.prod(leaf.shape)) for _, leaf in leaves]
        if arr.ndim == 0 or arr.shape[0] != n or arr.size != n * sum(widths):
            raise ValueError(f"column {name!r}: shape {arr.shape}, expected {n} steps of {sum(widths)} values")
        arr, start = arr.reshape(n, -1), 0
        for (path, leaf), w in zip(leaves, widths):
            block, start = arr[:, start:start + w], start + w
            leaf_values[path] = list(block.reshape(n, *leaf.shape).astype(leaf.dtype, copy=False))
    return _assemble(space, (), leaf_values, n)


def row_to_episode(spec: TaskSpec, row: dict[str, Any]) -> Episode:
    """Inverse of `episode_to_row` (also takes nested lists, as JAT's rows); checks step counts."""
    rewards = np.asarray(row["rewards"], np.float32).reshape(-1)
    n = len(rewards)
    executed = _decode(spec.action_space, row, False, n, EXECUTED_COLUMNS) \
        if any(c in row for c in EXECUTED_COLUMNS.values()) else None
    return Episode(_decode(spec.observation_space, row, True, n), _decode(spec.action_space, row, False, n), rewards,
                   executed)


# ---------------------------------------------------------------- Arrow columns

def _list(values: pa.Array, lengths: np.ndarray | list[int]) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    large = offsets[-1] >= 2**31
    return (pa.LargeListArray if large else pa.ListArray).from_arrays(
        pa.array(offsets, pa.int64() if large else pa.int32()), values)


def _column(name: str, values: list) -> pa.Array:
    if name == "seed":
        return pa.array(values, pa.int64())
    if name == OBS_COLUMNS[TEXT]:
        return pa.array(values, pa.list_(pa.string()))
    if name == IMAGE_COL:
        frames = [f.tobytes() for ep in values for f in ep]
        binary = pa.large_binary() if sum(map(len, frames)) >= 2**31 else pa.binary()
        return _list(pa.array(frames, binary), [len(ep) for ep in values])
    out = pa.array(np.concatenate([v.reshape(-1) for v in values]))
    for d in reversed(values[0].shape[1:]):
        out = _list(out, np.full(len(out) // d, d))
    return _list(out, [len(v) for v in values])


def _leaf_path(name: str, t: pa.DataType) -> str:
    """Parquet's name for the values of a (nested) list column, e.g. discrete_actions.list.element."""
    while pa.types.is_list(t) or pa.types.is_large_list(t):
        name, t = name + ".list.element", t.value_type
    return name


def _png(data: bytes) -> np.ndarray:
    import cv2  # only for Hugging Face Image structs (PNG)

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return img[..., None] if img.ndim == 2 else np.concatenate([img[..., 2::-1], img[..., 3:]], -1)  # BGR(A) -> RGB(A)


def _decode_column(name: str, col: pa.ChunkedArray) -> list:
    """A list column -> one numpy array (list of str for text) per row; checks value types."""
    arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) or arr.null_count:
        raise ValueError(f"column {name!r} has type {arr.type}, expected a list per episode without nulls")
    lengths, steps, shape = arr.value_lengths().to_numpy(), arr.flatten(), []
    while pa.types.is_list(steps.type) or pa.types.is_large_list(steps.type) or pa.types.is_fixed_size_list(steps.type):
        sizes = steps.value_lengths().to_numpy(zero_copy_only=False)
        if steps.null_count or (sizes != sizes[:1]).any():
            raise ValueError(f"column {name!r}: ragged or null values within a step")
        shape.append(int(sizes[0]) if len(sizes) else 0)
        steps = steps.flatten()
    t, n = steps.type, int(lengths.sum())
    expect = ("string" if name == OBS_COLUMNS[TEXT] else "image" if name == IMAGE_COL
              else "integer" if name in ("discrete_observations", "discrete_actions", EXECUTED_COLUMNS[DISCRETE])
              else "float")
    if expect == "string" and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        values = steps.to_pylist()
    elif expect == "image" and (pa.types.is_binary(t) or pa.types.is_large_binary(t)) and not shape:
        offsets = np.frombuffer(steps.buffers()[1], np.int64 if pa.types.is_large_binary(t) else np.int32)
        offsets = offsets[steps.offset:steps.offset + n + 1]
        if steps.null_count or len(set(np.diff(offsets).tolist())) > 1:
            raise ValueError(f"column {name!r}: images of different sizes")
        values = np.frombuffer(steps.buffers()[2], np.uint8)[offsets[0]:offsets[-1]].reshape(n, -1)
    elif expect == "image" and pa.types.is_struct(t) and t.get_field_index("bytes") >= 0 and not shape:
        values = np.stack([_png(b) for b in steps.field("bytes").to_pylist()]) if n else np.zeros((0, 0))
    elif (pa.types.is_integer(t) and expect in ("integer", "image")) or (
            expect == "float" and (pa.types.is_floating(t) or pa.types.is_integer(t))):
        values = steps.to_numpy(zero_copy_only=False).reshape(n, *shape)
    else:
        raise ValueError(f"column {name!r} has type {arr.type}, expected {expect} values")
    return [values[end - k:end] for k, end in zip(lengths, np.cumsum(lengths))]


def _read_rows(path: Path, names: list[str], optional: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows of one shard, only `names` (a missing column raises ValueError naming it) and those of
    `optional` the shard has."""
    pf = pq.ParquetFile(path)
    missing = [c for c in names if c not in pf.schema_arrow.names]
    if missing:
        raise ValueError(f"missing column {missing[0]!r}")
    names = names + [c for c in optional if c in pf.schema_arrow.names]
    table = pf.read(columns=names)
    cols = {c: table.column(c).to_pylist() if c == "seed" else _decode_column(c, table.column(c)) for c in names}
    return [{c: v[i] for c, v in cols.items()} for i in range(table.num_rows)]


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


def _scan(folder: Path) -> tuple[list[float], set[int]]:
    """Returns and seeds of the shards in a split folder (unreadable shards: warned about, skipped)."""
    returns, seeds = [], set()
    for path in sorted(folder.glob("shard-*.parquet")):
        try:
            rows = _read_rows(path, ["rewards", "seed"])
        except (OSError, pa.ArrowException, ValueError) as e:
            warnings.warn(f"{path}: unreadable shard left as is: {e}")
            continue
        returns += [float(r["rewards"].sum(dtype=np.float64)) for r in rows]
        seeds |= {r["seed"] for r in rows if r["seed"] is not None}
    return returns, seeds


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class DatasetWriter:
    """Appends episodes of one task and split as shards of `shard_episodes` episodes.

    `card` adds fields to card.json, e.g. {"expert": "bot", "packages": {"minigrid": "3.2.0"}}.
    Reopening a folder resumes: the next shard index follows the last one on disk. card.json is
    rewritten after a shard when `card_interval_s` have passed since its last write, and on close."""

    def __init__(self, root: str | Path, spec: TaskSpec, card: dict, split: str = "train", shard_episodes: int = 16,
                 card_interval_s: float = 1.0, executed: bool = False):
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {SPLITS}")
        self.spec, self.split, self.shard_episodes = spec, split, shard_episodes
        self.card_interval_s, self._card_stale = card_interval_s, False
        self.folder, self.columns = task_folder(root, spec.name), columns(spec, executed)
        self.executed = executed  # shards also hold the executed actions (labels where none differ)
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
        self._returns, self._seeds = _scan(self.folder / split)
        done = [int(p.stem.split("-")[1]) for p in (self.folder / split).glob("shard-*.parquet")]
        self._next = max(done, default=-1) + 1
        self._write_card()

    def add(self, episode: Episode, seed: int | None = None) -> None:
        if self.executed and episode.executed is None:
            episode = Episode(episode.observations, episode.actions, episode.rewards, episode.actions)
        row = episode_to_row(self.spec, episode)
        if not self.executed:
            for c in EXECUTED_COLUMNS.values():
                row.pop(c, None)
        row["seed"] = seed
        self._buffer.append(row)
        if len(self._buffer) >= self.shard_episodes:
            self.flush()

    def flush(self) -> None:
        """Write the buffered episodes as the next shard (atomically), then update the card."""
        if not self._buffer:
            return
        arrays = [_column(c, [r[c] for r in self._buffer]) for c in self.columns]
        meta = {IMAGE_COL: {"shape": json.dumps(self.card.get("image_shape"))}}
        table = pa.Table.from_arrays(arrays, schema=pa.schema(
            [pa.field(c, a.type, metadata=meta.get(c)) for c, a in zip(self.columns, arrays)]))
        path = self.folder / self.split / f"shard-{self._next:05d}.parquet"
        dictionary = [_leaf_path(c, a.type) for c, a in zip(self.columns, arrays) if c in DICTIONARY_COLUMNS]
        atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd", use_dictionary=dictionary))
        self._next += 1
        self._returns += [float(r["rewards"].sum(dtype=np.float64)) for r in self._buffer]
        self._seeds |= {r["seed"] for r in self._buffer if r["seed"] is not None}
        self._buffer, self._card_stale = [], True
        if time.monotonic() - self._card_time >= self.card_interval_s:
            self._write_card()

    def _write_card(self) -> None:
        """Rewrites this split's entry; the other split's is kept as on disk (its writer may be open too)."""
        on_disk = _load_card(self.card_path).get("splits", {}) if self.card_path.exists() else {}
        if self._returns:
            on_disk[self.split] = {"episodes": len(self._returns), "seeds": _ranges(self._seeds),
                                   "returns": _summary(self._returns)}
        self.card["splits"] = on_disk
        self.card["updated"] = _now()
        text = json.dumps(self.card, indent=1)
        atomic_write(self.card_path, lambda tmp: tmp.write_text(text))
        self._card_time, self._card_stale = time.monotonic(), False

    def episodes_on_disk(self, split: str | None = None) -> int:
        return len(self._returns if split in (None, self.split) else _scan(self.folder / split)[0])

    def seeds_on_disk(self, split: str | None = None) -> set[int]:
        return set(self._seeds if split in (None, self.split) else _scan(self.folder / split)[1])

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
