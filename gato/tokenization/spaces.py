"""Gymnasium spaces <-> tokens: one dispatch on the space type, as Gymnasium's own flatten.

`encode(space, x)` turns an observation or action into `Tokens`; `decode(space, ids)` turns
action ids back into a valid action of the space. Rules (docs/tokens.md):

- Discrete, MultiDiscrete, MultiBinary and integer Box: discrete tokens of value - low (< 1024).
- uint8 Box of shape (H, W), (H, W, 1) or (H, W, 3) with H, W >= 16: an image (16x16 patches).
  Smaller uint8 grids (BabyAI's 7x7x3) are discrete values.
- float Box: continuous tokens, flattened row-major. Which values are companded is decided per
  element from the bounds: observations in [-1, 1] are binned as they are, others mu-law
  companded; actions with finite bounds are mapped affinely onto [-1, 1] (identity when the
  bounds are [-1, 1], as the paper's actions), unbounded actions are mu-law companded.
- Dict: keys in lexicographic order. Tuple: in order. Text: SentencePiece ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import singledispatch
from typing import Any

import numpy as np
from gymnasium import spaces

from gato.tokenization import continuous, images
from gato.tokenization.vocab import Kind, TokenMap

OBSERVATION = "observation"
ACTION = "action"


@dataclass
class Tokens:
    """Flat tokens of one observation or action. Image positions have id -1 and one patch each."""

    ids: np.ndarray  # (n,) int64
    kinds: np.ndarray  # (n,) uint8, observation kinds
    patches: np.ndarray  # (p, 16, 16, 3) float32, p = number of IMAGE positions
    patch_pos: np.ndarray  # (p, 4) int16

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def of(ids: np.ndarray, kind: Kind) -> "Tokens":
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        return Tokens(ids, np.full(len(ids), kind, np.uint8), _NO_PATCHES, _NO_PATCH_POS)

    @staticmethod
    def concat(parts: list["Tokens"]) -> "Tokens":
        if len(parts) == 1:
            return parts[0]
        return Tokens(np.concatenate([p.ids for p in parts]),
                      np.concatenate([p.kinds for p in parts]),
                      np.concatenate([p.patches for p in parts]),
                      np.concatenate([p.patch_pos for p in parts]))


_NO_PATCHES = np.zeros((0, images.PATCH, images.PATCH, images.CHANNELS), np.float32)
_NO_PATCH_POS = np.zeros((0, 4), np.int16)
_NO_PATCHES.setflags(write=False)
_NO_PATCH_POS.setflags(write=False)


# ---------------------------------------------------------------- classification of Box spaces

def is_image_space(space: spaces.Space) -> bool:
    if not isinstance(space, spaces.Box) or space.dtype != np.uint8:
        return False
    s = space.shape
    return (len(s) == 2 or (len(s) == 3 and s[2] in (1, 3))) and s[0] >= 16 and s[1] >= 16


def is_integer_box(space: spaces.Box) -> bool:
    return np.issubdtype(space.dtype, np.integer) or space.dtype == np.bool_


def _int_box_span(space: spaces.Box, tm: TokenMap) -> np.ndarray:
    """high - low + 1 per element, capped at num_discrete. Computed in float64: with int64 or
    uint64 bounds (Box(0, 2**63 - 1)) the integer difference overflows."""
    span = np.asarray(space.high, np.float64) - np.asarray(space.low, np.float64) + 1.0
    return np.minimum(span, tm.num_discrete).astype(np.int64)


def _continuous_transform(space: spaces.Box, role: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per element: (mask of mu-law companded elements, affine offset, affine scale).

    A value v becomes (v - offset) / scale before binning (scale 1, offset 0 = unchanged)."""
    low = np.asarray(space.low, np.float64).reshape(-1)
    high = np.asarray(space.high, np.float64).reshape(-1)
    finite = np.isfinite(low) & np.isfinite(high)
    offset, scale = np.zeros_like(low), np.ones_like(low)
    if role == ACTION:
        compand = ~finite
        offset[finite] = (high[finite] + low[finite]) / 2.0
        scale[finite] = np.maximum((high[finite] - low[finite]) / 2.0, 1e-12)
    else:
        compand = ~((low >= -1.0) & (high <= 1.0))
    return compand, offset, scale


# ---------------------------------------------------------------- encode

def encode(space: spaces.Space, x: Any, tm: TokenMap, *, role: str = OBSERVATION,
           text=None, name: str | None = None) -> Tokens:
    """Tokenize one observation (role='observation') or action (role='action') of `space`.

    `text` is the TextTokenizer, needed for Text spaces. Errors name the value by `name`."""
    return _encode(space, x, tm, role, text, name or role)


@singledispatch
def _encode(space, x, tm, role, text, name) -> Tokens:
    raise TypeError(f"{name}: unsupported space type {type(space).__name__} ({space})")


def _check_shape(space: spaces.Space, arr: np.ndarray, name: str) -> None:
    if arr.shape != space.shape:
        raise ValueError(f"{name}: expected shape {space.shape} for {space}, got {arr.shape}")


def _as_int_array(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(f"{name}: expected integer values, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _discrete_tokens(values: np.ndarray, n: np.ndarray | int, tm: TokenMap, name: str) -> Tokens:
    """values already shifted to start at 0; each must be < n (and < 1024)."""
    n = np.broadcast_to(np.asarray(n), values.shape).reshape(-1)  # per element, as values
    values = values.reshape(-1)
    bad = (values < 0) | (values >= n) | (values >= tm.num_discrete)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}: discrete value {values[i]} at flat index {i} is outside "
                         f"[0, {min(int(n[i]), tm.num_discrete)})")
    return Tokens.of(tm.discrete_start + values, Kind.DISCRETE_OBS)


@_encode.register
def _(space: spaces.Discrete, x, tm, role, text, name) -> Tokens:
    arr = _as_int_array(x, name)
    if arr.shape not in ((), (1,)):
        raise ValueError(f"{name}: expected a scalar for {space}, got shape {arr.shape}")
    return _discrete_tokens(arr - int(space.start), int(space.n), tm, name)


@_encode.register
def _(space: spaces.MultiDiscrete, x, tm, role, text, name) -> Tokens:
    arr = _as_int_array(x, name)
    _check_shape(space, arr, name)
    return _discrete_tokens(arr - space.start, space.nvec, tm, name)


@_encode.register
def _(space: spaces.MultiBinary, x, tm, role, text, name) -> Tokens:
    arr = _as_int_array(x, name)
    _check_shape(space, arr, name)
    return _discrete_tokens(arr, 2, tm, name)


@_encode.register
def _(space: spaces.Box, x, tm, role, text, name) -> Tokens:
    arr = np.asarray(x)
    _check_shape(space, arr, name)
    if is_image_space(space) and role == OBSERVATION:
        if arr.dtype != np.uint8:
            raise ValueError(f"{name}: image space expects uint8 pixels, got dtype {arr.dtype}")
        patches = images.patchify(arr, name)
        rows, cols = images.grid_shape(arr.shape[0], arr.shape[1])
        return Tokens(np.full(len(patches), -1, np.int64), np.full(len(patches), Kind.IMAGE, np.uint8),
                      patches, images.patch_positions(rows, cols))
    if is_integer_box(space):
        arr = _as_int_array(arr, name)
        low = np.asarray(space.low, np.int64)
        return _discrete_tokens(arr - low, _int_box_span(space, tm), tm, name)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name}: expected numeric values, got dtype {arr.dtype}")
    compand, offset, scale = _continuous_transform(space, role)
    flat = arr.astype(np.float64).reshape(-1)
    continuous.check_finite(flat, name)
    y = (flat - offset) / scale
    y = np.where(compand, continuous.mu_law(y), y)
    bins = continuous.to_bins(y, tm.num_bins)
    return Tokens.of(tm.continuous_start + bins, Kind.CONTINUOUS_OBS)


@_encode.register
def _(space: spaces.Dict, x, tm, role, text, name) -> Tokens:
    if not isinstance(x, Mapping):
        raise ValueError(f"{name}: expected a mapping with keys {sorted(space.spaces)}, got {type(x).__name__}")
    missing, extra = set(space.spaces) - set(x), set(x) - set(space.spaces)
    if missing or extra:
        raise ValueError(f"{name}: keys do not match the space: missing {sorted(missing)}, "
                         f"unexpected {sorted(extra)}")
    return Tokens.concat([_encode(space.spaces[k], x[k], tm, role, text, f"{name}[{k!r}]")
                          for k in sorted(space.spaces)])


@_encode.register
def _(space: spaces.Tuple, x, tm, role, text, name) -> Tokens:
    if len(x) != len(space.spaces):
        raise ValueError(f"{name}: expected {len(space.spaces)} items, got {len(x)}")
    return Tokens.concat([_encode(s, v, tm, role, text, f"{name}[{i}]")
                          for i, (s, v) in enumerate(zip(space.spaces, x))])


@_encode.register
def _(space: spaces.Text, x, tm, role, text, name) -> Tokens:
    if not isinstance(x, str):
        raise ValueError(f"{name}: expected str for {space}, got {type(x).__name__}")
    if not space.min_length <= len(x) <= space.max_length:
        raise ValueError(f"{name}: text of {len(x)} characters, expected {space.min_length} to "
                         f"{space.max_length} for {space}")
    if text is None:
        raise ValueError(f"{name}: a Text space needs a text tokenizer")
    ids = np.asarray(text.encode(x), np.int64)
    if ids.size and ids.max() >= tm.text_vocab:
        raise ValueError(f"{name}: text tokenizer id {ids.max()} is outside the token map's "
                         f"text range [0, {tm.text_vocab})")
    return Tokens.of(ids, Kind.TEXT_OBS)


# ---------------------------------------------------------------- encode N values at once

@dataclass
class BatchTokens:
    """Tokens of N values of one space whose token layout is fixed: every row has the same kinds
    and patch positions (any space without Text). Row r equals encode() of value r."""

    ids: np.ndarray  # (N, n) int64, -1 at image positions
    kinds: np.ndarray  # (n,) uint8
    patches: np.ndarray  # (N, p, 16, 16, 3) float32
    patch_pos: np.ndarray  # (p, 4) int16

    def row(self, r: int) -> Tokens:
        return Tokens(self.ids[r], self.kinds, self.patches[r], self.patch_pos)

    @staticmethod
    def of(ids: np.ndarray, kind: Kind) -> "BatchTokens":
        ids = ids.reshape(len(ids), -1)
        return BatchTokens(ids, np.full(ids.shape[1], kind, np.uint8),
                           np.zeros((len(ids), 0, *_NO_PATCHES.shape[1:]), np.float32), _NO_PATCH_POS)

    @staticmethod
    def concat(parts: list["BatchTokens"]) -> "BatchTokens":
        if len(parts) == 1:
            return parts[0]
        return BatchTokens(np.concatenate([p.ids for p in parts], 1), np.concatenate([p.kinds for p in parts]),
                           np.concatenate([p.patches for p in parts], 1),
                           np.concatenate([p.patch_pos for p in parts]))


class _PerRow(Exception):
    """Raised inside encode_batch when a value must go through per-row encode() instead."""


def encode_batch(space: spaces.Space, xs: list, tm: TokenMap, *, role: str = OBSERVATION) -> BatchTokens | None:
    """encode() of N values at once, vectorised over the batch (numpy); equal to encoding each.

    None when a value needs the per-row path: a Text part (its token count varies), or a value
    that encode() must reject with an error naming it (wrong shape, dtype, range, non-finite)."""
    try:
        return _encode_batch(space, list(xs), tm, role)
    except _PerRow:
        return None


@singledispatch
def _encode_batch(space, xs, tm, role) -> BatchTokens:
    raise _PerRow


def _stacked(xs: list, shape: tuple, integer: bool) -> np.ndarray:
    """The N values as one (N, *shape) array (int64 when `integer`), or _PerRow."""
    try:
        arr = np.asarray(xs)
    except ValueError:  # ragged
        raise _PerRow from None
    ok = np.issubdtype(arr.dtype, np.integer) or (arr.dtype == np.bool_ if integer else
                                                  np.issubdtype(arr.dtype, np.floating))
    if arr.shape != (len(xs), *shape) or not ok:
        raise _PerRow
    return arr.astype(np.int64) if integer else arr


def _discrete_batch(values: np.ndarray, n, tm: TokenMap) -> BatchTokens:
    if ((values < 0) | (values >= n) | (values >= tm.num_discrete)).any():
        raise _PerRow
    return BatchTokens.of(tm.discrete_start + values, Kind.DISCRETE_OBS)


@_encode_batch.register
def _(space: spaces.Discrete, xs, tm, role):
    return _discrete_batch(_stacked(xs, (), True) - int(space.start), int(space.n), tm)


@_encode_batch.register
def _(space: spaces.MultiDiscrete, xs, tm, role):
    return _discrete_batch(_stacked(xs, space.shape, True) - space.start, space.nvec, tm)


@_encode_batch.register
def _(space: spaces.MultiBinary, xs, tm, role):
    return _discrete_batch(_stacked(xs, space.shape, True), 2, tm)


@_encode_batch.register
def _(space: spaces.Box, xs, tm, role):
    if is_image_space(space) and role == OBSERVATION:
        arr = np.asarray(xs) if all(getattr(x, "dtype", None) == np.uint8 for x in xs) else None
        if arr is None or arr.shape != (len(xs), *space.shape):
            raise _PerRow
        patches = images.patchify_batch(arr)
        n = patches.shape[1]
        return BatchTokens(np.full((len(xs), n), -1, np.int64), np.full(n, Kind.IMAGE, np.uint8), patches,
                           images.patch_positions(*images.grid_shape(space.shape[0], space.shape[1])))
    if is_integer_box(space):
        return _discrete_batch(_stacked(xs, space.shape, True) - np.asarray(space.low, np.int64),
                               _int_box_span(space, tm), tm)
    arr = _stacked(xs, space.shape, False)
    compand, offset, scale = _continuous_transform(space, role)
    flat = arr.astype(np.float64).reshape(len(xs), -1)
    if not np.isfinite(flat).all():
        raise _PerRow
    y = (flat - offset) / scale
    y = np.where(compand, continuous.mu_law(y), y)
    return BatchTokens.of(tm.continuous_start + continuous.to_bins(y, tm.num_bins), Kind.CONTINUOUS_OBS)


@_encode_batch.register
def _(space: spaces.Dict, xs, tm, role):
    keys = sorted(space.spaces)
    if not all(isinstance(x, Mapping) and len(x) == len(keys) and all(k in x for k in keys) for x in xs):
        raise _PerRow
    return BatchTokens.concat([_encode_batch(space.spaces[k], [x[k] for x in xs], tm, role) for k in keys])


@_encode_batch.register
def _(space: spaces.Tuple, xs, tm, role):
    if not all(len(x) == len(space.spaces) for x in xs):
        raise _PerRow
    return BatchTokens.concat([_encode_batch(s, [x[i] for x in xs], tm, role) for i, s in enumerate(space.spaces)])


# ---------------------------------------------------------------- action decoding

def num_tokens(space: spaces.Space) -> int:
    """Number of tokens of a fixed-size (action) space."""
    return len(token_ranges(space, TokenMap()))


def token_ranges(space: spaces.Space, tm: TokenMap) -> list[tuple[int, int]]:
    """Valid id range [lo, hi) of each token of an action: sampling restricted to these ids
    always decodes to a valid action."""
    if isinstance(space, spaces.Discrete):
        return [(tm.discrete_start, tm.discrete_start + min(int(space.n), tm.num_discrete))]
    if isinstance(space, (spaces.MultiDiscrete, spaces.MultiBinary)):
        n = space.nvec.reshape(-1) if isinstance(space, spaces.MultiDiscrete) else [2] * int(np.prod(space.shape))
        return [(tm.discrete_start, tm.discrete_start + min(int(k), tm.num_discrete)) for k in n]
    if isinstance(space, spaces.Box) and not is_image_space(space):
        if is_integer_box(space):
            return [(tm.discrete_start, tm.discrete_start + int(k))
                    for k in _int_box_span(space, tm).reshape(-1)]
        return [tm.continuous_range()] * int(np.prod(space.shape))
    if isinstance(space, spaces.Dict):
        return [r for k in sorted(space.spaces) for r in token_ranges(space.spaces[k], tm)]
    if isinstance(space, spaces.Tuple):
        return [r for s in space.spaces for r in token_ranges(s, tm)]
    raise TypeError(f"{space} has no fixed number of action tokens")


def decode(space: spaces.Space, ids: np.ndarray, tm: TokenMap, *, text=None) -> Any:
    """Action ids -> a valid action of `space` (inverse of encode(role='action'))."""
    ids = np.asarray(ids, np.int64).reshape(-1)
    if isinstance(space, spaces.Text):
        if text is None:
            raise ValueError("decoding a Text action needs a text tokenizer")
        return text.decode(ids)
    ranges = token_ranges(space, tm)
    if len(ids) != len(ranges):
        raise ValueError(f"action for {space} needs {len(ranges)} tokens, got {len(ids)}")
    for i, (tok, (lo, hi)) in enumerate(zip(ids, ranges)):
        if not lo <= tok < hi:
            raise ValueError(f"action token {i} of {space}: id {tok} ({tm.describe(tok)}) "
                             f"is outside the valid range [{lo}, {hi})")
    return _decode(space, ids, tm)


def decode_batch(space: spaces.Space, ids: np.ndarray, tm: TokenMap) -> list:
    """decode() of N actions at once: ids (N, tokens) -> N actions, each equal to decode(row)."""
    ids = np.asarray(ids, np.int64)
    ranges = np.array(token_ranges(space, tm), np.int64).reshape(-1, 2)
    if ids.ndim != 2 or ids.shape[1] != len(ranges):
        raise ValueError(f"actions for {space} need shape (N, {len(ranges)}), got {ids.shape}")
    bad = (ids < ranges[:, 0]) | (ids >= ranges[:, 1])
    if bad.any():
        r, i = np.argwhere(bad)[0]
        raise ValueError(f"action {r}, token {i} of {space}: id {ids[r, i]} ({tm.describe(ids[r, i])}) "
                         f"is outside the valid range [{ranges[i, 0]}, {ranges[i, 1]})")
    return _decode_batch(space, ids, tm)


@singledispatch
def _decode_batch(space, ids, tm) -> list:
    return [_decode(space, row, tm) for row in ids]


@_decode_batch.register
def _(space: spaces.Discrete, ids, tm):
    return list(ids[:, 0] - tm.discrete_start + int(space.start))


@_decode_batch.register(spaces.MultiDiscrete)
@_decode_batch.register(spaces.MultiBinary)
@_decode_batch.register(spaces.Box)
def _(space, ids, tm):
    if isinstance(space, spaces.Box) and not is_integer_box(space):
        compand, offset, scale = _continuous_transform(space, ACTION)
        y = continuous.from_bins(ids - tm.continuous_start, tm.num_bins)
        y = np.where(compand, continuous.inverse_mu_law(y), y) * scale + offset
        return _rows(np.clip(y.reshape(len(ids), *space.shape), space.low, space.high).astype(space.dtype))
    low = space.low if isinstance(space, spaces.Box) else getattr(space, "start", 0)
    return _rows(((ids - tm.discrete_start).reshape(len(ids), *space.shape) + low).astype(space.dtype))


def _rows(arr: np.ndarray) -> list[np.ndarray]:
    """(N, *shape) -> N arrays of shape `shape` (0-d arrays for scalar spaces, as decode gives)."""
    return list(arr) if arr.ndim > 1 else [np.asarray(a) for a in arr]


@_decode_batch.register
def _(space: spaces.Dict, ids, tm):
    parts, i = {}, 0
    for k in sorted(space.spaces):
        n = len(token_ranges(space.spaces[k], tm))
        parts[k] = _decode_batch(space.spaces[k], ids[:, i:i + n], tm)
        i += n
    return [{k: v[r] for k, v in parts.items()} for r in range(len(ids))]


@_decode_batch.register
def _(space: spaces.Tuple, ids, tm):
    parts, i = [], 0
    for s in space.spaces:
        n = len(token_ranges(s, tm))
        parts.append(_decode_batch(s, ids[:, i:i + n], tm))
        i += n
    return [tuple(p[r] for p in parts) for r in range(len(ids))]


@singledispatch
def _decode(space, ids, tm):
    raise TypeError(f"cannot decode actions of space type {type(space).__name__}")


@_decode.register
def _(space: spaces.Discrete, ids, tm):
    return np.int64(ids[0] - tm.discrete_start + int(space.start))


@_decode.register
def _(space: spaces.MultiDiscrete, ids, tm):
    return ((ids - tm.discrete_start).reshape(space.shape) + space.start).astype(space.dtype)


@_decode.register
def _(space: spaces.MultiBinary, ids, tm):
    return (ids - tm.discrete_start).reshape(space.shape).astype(space.dtype)


@_decode.register
def _(space: spaces.Box, ids, tm):
    if is_integer_box(space):
        return ((ids - tm.discrete_start).reshape(space.shape) + space.low).astype(space.dtype)
    compand, offset, scale = _continuous_transform(space, ACTION)
    y = continuous.from_bins(ids - tm.continuous_start, tm.num_bins)
    y = np.where(compand, continuous.inverse_mu_law(y), y) * scale + offset
    return np.clip(y.reshape(space.shape), space.low, space.high).astype(space.dtype)


@_decode.register
def _(space: spaces.Dict, ids, tm):
    out, i = {}, 0
    for k in sorted(space.spaces):
        n = len(token_ranges(space.spaces[k], tm))
        out[k] = _decode(space.spaces[k], ids[i:i + n], tm)
        i += n
    return out


@_decode.register
def _(space: spaces.Tuple, ids, tm):
    out, i = [], 0
    for s in space.spaces:
        n = len(token_ranges(s, tm))
        out.append(_decode(s, ids[i:i + n], tm))
        i += n
    return tuple(out)
