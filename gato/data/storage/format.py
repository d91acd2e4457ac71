"""The shard format: JAT's columns, spaces as JSON, an episode as one Parquet row (see the
package docstring)."""


from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from gymnasium import spaces

from gato.data.episode import Episode, TaskSpec
from gato.tokenization.spaces import ACTION, OBSERVATION, is_image_space, leaves, modality

# 1: the steps only. 2: also, optionally, each episode's final observation (the `final_*`
# columns) and how it ended (`truncated`). A version 1 folder reads as before.
FORMAT_VERSION = 2
# dagger: learner-visited states labelled by the expert; decoy: BabyAI episodes that start
# heading for an object the mission does not name (`gato collect --decoy`), labelled by the bot.
SPLITS = ("train", "test", "dagger", "decoy")
TEXT, IMAGE, DISCRETE, CONTINUOUS = "text", "image", "discrete", "continuous"
OBS_COLUMNS = {TEXT: "text_observations", IMAGE: "image_observations",
               DISCRETE: "discrete_observations", CONTINUOUS: "continuous_observations"}
ACT_COLUMNS = {DISCRETE: "discrete_actions", CONTINUOUS: "continuous_actions"}
# The actions the environment ran where they differ from the labels (DAgger: the learner's).
EXECUTED_COLUMNS = {k: f"executed_{v}" for k, v in ACT_COLUMNS.items()}
# The observation after the last action (one value per episode, stored as a one-step list) and
# whether a time limit ended the episode (bool per episode, null if not known).
FINAL_COLUMNS = {k: f"final_{v}" for k, v in OBS_COLUMNS.items()}
TRUNCATED = "truncated"
IMAGE_COL = OBS_COLUMNS[IMAGE]
TEXT_COLUMNS = (OBS_COLUMNS[TEXT], FINAL_COLUMNS[TEXT])
IMAGE_COLUMNS = (IMAGE_COL, FINAL_COLUMNS[IMAGE])
INTEGER_COLUMNS = (OBS_COLUMNS[DISCRETE], FINAL_COLUMNS[DISCRETE], ACT_COLUMNS[DISCRETE], EXECUTED_COLUMNS[DISCRETE])
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


def _layout(space: gym.Space, observation: bool) -> dict[str, list[tuple[tuple, gym.Space]]]:
    """Leaves grouped by column kind (text, image, discrete, continuous)."""
    out: dict[str, list] = {}
    for path, leaf in leaves(space):
        try:
            kind = modality(leaf, OBSERVATION if observation else ACTION)
        except TypeError:
            raise TypeError(f"cannot store space type {type(leaf).__name__} ({leaf})") from None
        if kind == TEXT and not observation:
            raise ValueError(f"Text actions cannot be stored ({space})")
        if kind == DISCRETE and observation and isinstance(leaf, spaces.Box) and _is_image(leaf):
            kind = IMAGE
        out.setdefault(kind, []).append((path, leaf))
    for kind in (TEXT, IMAGE):
        if len(out.get(kind, [])) > 1:
            raise ValueError(f"{space} has {len(out[kind])} {kind} parts; the format holds at most one")
    return out


def columns(spec: TaskSpec, executed: bool = False, final: bool = False) -> list[str]:
    """The columns of a task's shards: observation, action, [executed action,] rewards, seed,
    [final observation, truncated]."""
    obs, act = _layout(spec.observation_space, True), _layout(spec.action_space, False)
    ex = [EXECUTED_COLUMNS[k] for k in ACT_COLUMNS if k in act] if executed else []
    end = [FINAL_COLUMNS[k] for k in OBS_COLUMNS if k in obs] + [TRUNCATED] if final else []
    return ([OBS_COLUMNS[k] for k in OBS_COLUMNS if k in obs] + [ACT_COLUMNS[k] for k in ACT_COLUMNS if k in act]
            + ex + ["rewards", "seed"] + end)


def optional_columns(spec: TaskSpec) -> tuple[str, ...]:
    """Columns a shard of the task may hold beyond `columns(spec)`: executed actions, the end."""
    return tuple(c for c in columns(spec, executed=True, final=True) if c not in columns(spec))


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
    if ep.final_observation is not None:
        row.update(_encode(spec.observation_space, [ep.final_observation], True, FINAL_COLUMNS))
    row["rewards"] = np.asarray(ep.rewards, np.float32)
    if ep.truncated is not None:
        row[TRUNCATED] = bool(ep.truncated)
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
    final = _decode(spec.observation_space, row, True, 1, FINAL_COLUMNS)[0] \
        if any(c in row for c in FINAL_COLUMNS.values()) else None
    truncated = row.get(TRUNCATED)
    return Episode(_decode(spec.observation_space, row, True, n), _decode(spec.action_space, row, False, n), rewards,
                   executed, final, None if truncated is None else bool(truncated))


# ---------------------------------------------------------------- Arrow columns

def _list(values: pa.Array, lengths: np.ndarray | list[int]) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    large = offsets[-1] >= 2**31
    return (pa.LargeListArray if large else pa.ListArray).from_arrays(
        pa.array(offsets, pa.int64() if large else pa.int32()), values)


def _column(name: str, values: list) -> pa.Array:
    if name == "seed":
        return pa.array(values, pa.int64())
    if name == TRUNCATED:
        return pa.array(values, pa.bool_())
    if name in TEXT_COLUMNS:
        return pa.array(values, pa.list_(pa.string()))
    if name in IMAGE_COLUMNS:
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
    expect = ("string" if name in TEXT_COLUMNS else "image" if name in IMAGE_COLUMNS
              else "integer" if name in INTEGER_COLUMNS else "float")
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
    cols = {c: table.column(c).to_pylist() if c in ("seed", TRUNCATED) else _decode_column(c, table.column(c))
            for c in names}
    return [{c: v[i] for c, v in cols.items()} for i in range(table.num_rows)]
