"""`encode` and `decode` of gato.tokenization.spaces for N values at once, vectorised over the
batch with numpy: an agent's N environments tokenized in one call (docs/design.md, "Acting").
Each row equals the per-row function's result (tests/test_tokenization_batch.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import singledispatch

import numpy as np
from gymnasium import spaces

from gato.tokenization import continuous, images
from gato.tokenization.spaces import (NO_PATCH_POS, NO_PATCHES, OBSERVATION, Tokens, box_values, continuous_transform,
                                      decode, dict_keys, int_box_span, is_image_space, is_integer_box, token_ranges)
from gato.tokenization.vocab import Kind, TokenMap


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
                           np.zeros((len(ids), 0, *NO_PATCHES.shape[1:]), np.float32), NO_PATCH_POS)

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
                               int_box_span(space, tm), tm)
    arr = _stacked(xs, space.shape, False)
    compand, offset, scale = continuous_transform(space, role)
    flat = arr.astype(np.float64).reshape(len(xs), -1)
    if not np.isfinite(flat).all():
        raise _PerRow
    y = (flat - offset) / scale
    y = np.where(compand, continuous.mu_law(y), y)
    return BatchTokens.of(tm.continuous_start + continuous.to_bins(y, tm.num_bins), Kind.CONTINUOUS_OBS)


@_encode_batch.register
def _(space: spaces.Dict, xs, tm, role):
    keys = dict_keys(space, tm.observation_order if role == OBSERVATION else "key")
    if not all(isinstance(x, Mapping) and len(x) == len(keys) and all(k in x for k in keys) for x in xs):
        raise _PerRow
    return BatchTokens.concat([_encode_batch(space.spaces[k], [x[k] for x in xs], tm, role) for k in keys])


@_encode_batch.register
def _(space: spaces.Tuple, xs, tm, role):
    if not all(len(x) == len(space.spaces) for x in xs):
        raise _PerRow
    return BatchTokens.concat([_encode_batch(s, [x[i] for x in xs], tm, role) for i, s in enumerate(space.spaces)])


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
    return [decode(space, row, tm) for row in ids]


@_decode_batch.register
def _(space: spaces.Discrete, ids, tm):
    return list(ids[:, 0] - tm.discrete_start + int(space.start))


@_decode_batch.register(spaces.MultiDiscrete)
@_decode_batch.register(spaces.MultiBinary)
def _(space, ids, tm):
    return _rows(((ids - tm.discrete_start).reshape(len(ids), *space.shape) + getattr(space, "start", 0))
                 .astype(space.dtype))


@_decode_batch.register
def _(space: spaces.Box, ids, tm):
    return _rows(box_values(space, ids, tm))


def _rows(arr: np.ndarray) -> list[np.ndarray]:
    """(N, *shape) -> N arrays of shape `shape` (0-d arrays for scalar spaces, as decode gives)."""
    return list(arr) if arr.ndim > 1 else [np.asarray(a) for a in arr]


@_decode_batch.register
def _(space: spaces.Dict, ids, tm):
    parts, i = {}, 0
    for k in dict_keys(space):
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
