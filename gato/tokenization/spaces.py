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
- Dict: an observation's keys as the paper orders them (text, then images, then tensors, each
  group by key; `dict_keys`), an action's by key. Tuple: in order. Text: SentencePiece ids.
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
        return Tokens(ids, np.full(len(ids), kind, np.uint8), NO_PATCHES, NO_PATCH_POS)

    @staticmethod
    def concat(parts: list["Tokens"]) -> "Tokens":
        if len(parts) == 1:
            return parts[0]
        return Tokens(np.concatenate([p.ids for p in parts]),
                      np.concatenate([p.kinds for p in parts]),
                      np.concatenate([p.patches for p in parts]),
                      np.concatenate([p.patch_pos for p in parts]))


NO_PATCHES = np.zeros((0, images.PATCH, images.PATCH, images.CHANNELS), np.float32)
NO_PATCH_POS = np.zeros((0, 4), np.int16)
NO_PATCHES.setflags(write=False)
NO_PATCH_POS.setflags(write=False)


# ---------------------------------------------------------------- classification of Box spaces

def is_image_space(space: spaces.Space) -> bool:
    if not isinstance(space, spaces.Box) or space.dtype != np.uint8:
        return False
    s = space.shape
    return (len(s) == 2 or (len(s) == 3 and s[2] in (1, 3))) and s[0] >= 16 and s[1] >= 16


def is_integer_box(space: spaces.Box) -> bool:
    return np.issubdtype(space.dtype, np.integer) or space.dtype == np.bool_


def int_box_span(space: spaces.Box, tm: TokenMap) -> np.ndarray:
    """high - low + 1 per element, capped at num_discrete. Computed in float64: with int64 or
    uint64 bounds (Box(0, 2**63 - 1)) the integer difference overflows."""
    span = np.asarray(space.high, np.float64) - np.asarray(space.low, np.float64) + 1.0
    return np.minimum(span, tm.num_discrete).astype(np.int64)


def continuous_transform(space: spaces.Box, role: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def dict_keys(space: spaces.Dict, order: str = "key") -> list:
    """A Dict's keys in token order. "key": lexicographic (the paper's "ordered lexicographically
    by key"; actions, and observations of models trained before the order below). "modality":
    the paper's observation [text, image patches, tensors], each group by key, so BabyAI's
    mission comes before its grid; a nested Dict or Tuple goes with the earliest group among its
    leaves. Every encoder and decoder of a Dict asks here, so the order is defined once."""
    keys = sorted(space.spaces)
    if order == "modality":
        rank = {"text": 0, "image": 1}
        keys.sort(key=lambda k: min(rank.get(modality(leaf), 2) for _, leaf in leaves(space.spaces[k])))
    return keys


def leaves(space: spaces.Space, path: tuple = ()) -> list[tuple[tuple, spaces.Space]]:
    """(path, leaf space) in token order: Dict keys as `dict_keys`, Tuple items in order."""
    if isinstance(space, spaces.Dict):
        return [x for k in dict_keys(space) for x in leaves(space.spaces[k], path + (k,))]
    if isinstance(space, spaces.Tuple):
        return [x for i, s in enumerate(space.spaces) for x in leaves(s, path + (i,))]
    return [(path, space)]


def modality(leaf: spaces.Space, role: str = OBSERVATION) -> str:
    """How a leaf space is tokenized: 'text', 'image', 'discrete' or 'continuous' (TypeError for
    a space type the tokenizer does not know)."""
    if isinstance(leaf, spaces.Text):
        return "text"
    if isinstance(leaf, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        return "discrete"
    if isinstance(leaf, spaces.Box):
        if role == OBSERVATION and is_image_space(leaf):
            return "image"
        return "discrete" if is_integer_box(leaf) else "continuous"
    raise TypeError(f"unsupported space type {type(leaf).__name__} ({leaf})")


def describe(space: spaces.Space) -> str:
    """What a space holds, e.g. 'discrete 148 + text' or 'image 64x64x3' (`gato tasks`)."""
    counts: dict[str, int] = {}
    images_: list[str] = []
    for _, leaf in leaves(space):
        kind = modality(leaf)
        if kind == "image":
            images_.append("x".join(map(str, leaf.shape)))
        else:
            counts[kind] = counts.get(kind, 0) + (0 if kind == "text" else int(np.prod(leaf.shape or (1,))))
    return " + ".join([f"image {i}" for i in images_] + [f"{k} {n}" if n else k for k, n in counts.items()])


def token_count(space: spaces.Space, x: Any, text=None) -> int:
    """How many tokens `encode(space, x)` gives (an image: its patches), without encoding."""
    total = 0
    for path, leaf in leaves(space):
        kind = modality(leaf)
        if kind == "text":
            value = x
            for key in path:
                value = value[key]
            total += len(text.encode(value)) if text is not None else 0
        elif kind == "image":
            total += int(np.prod(images.grid_shape(leaf.shape[0], leaf.shape[1])))
        else:
            total += int(np.prod(leaf.shape))
    return total


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
        return _discrete_tokens(arr - low, int_box_span(space, tm), tm, name)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name}: expected numeric values, got dtype {arr.dtype}")
    compand, offset, scale = continuous_transform(space, role)
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
    order = tm.observation_order if role == OBSERVATION else "key"
    return Tokens.concat([_encode(space.spaces[k], x[k], tm, role, text, f"{name}[{k!r}]")
                          for k in dict_keys(space, order)])


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


# ---------------------------------------------------------------- action decoding

def num_tokens(space: spaces.Space) -> int:
    """Number of tokens of a fixed-size (action) space."""
    return len(token_ranges(space, TokenMap()))


def token_ranges(space: spaces.Space, tm: TokenMap) -> list[tuple[int, int]]:
    """Valid id range [lo, hi) of each token of an action: sampling restricted to these ids
    always decodes to a valid action."""
    return _token_ranges(space, tm)


@singledispatch
def _token_ranges(space, tm) -> list[tuple[int, int]]:
    raise TypeError(f"{space} has no fixed number of action tokens")


def _discrete_ranges(n, tm: TokenMap) -> list[tuple[int, int]]:
    return [(tm.discrete_start, tm.discrete_start + min(int(k), tm.num_discrete)) for k in n]


@_token_ranges.register(spaces.Discrete)
@_token_ranges.register(spaces.MultiDiscrete)
@_token_ranges.register(spaces.MultiBinary)
def _(space, tm):  # values per element: n, nvec, or 2
    n = getattr(space, "nvec", None)
    n = [space.n] if isinstance(space, spaces.Discrete) else [2] * int(np.prod(space.shape)) if n is None else n
    return _discrete_ranges(np.reshape(n, -1), tm)


@_token_ranges.register
def _(space: spaces.Box, tm):
    if is_image_space(space):
        raise TypeError(f"{space} is an image: it has no fixed number of action tokens")
    if is_integer_box(space):
        return _discrete_ranges(int_box_span(space, tm).reshape(-1), tm)
    return [tm.continuous_range()] * int(np.prod(space.shape))


@_token_ranges.register
def _(space: spaces.Dict, tm):
    return [r for k in dict_keys(space) for r in _token_ranges(space.spaces[k], tm)]


@_token_ranges.register
def _(space: spaces.Tuple, tm):
    return [r for s in space.spaces for r in _token_ranges(s, tm)]


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
    return box_values(space, ids[None], tm).reshape(space.shape)


def box_values(space: spaces.Box, ids: np.ndarray, tm: TokenMap) -> np.ndarray:
    """Action ids (N, tokens) of a Box -> N values (N, *shape) of its dtype, within its bounds."""
    N = len(ids)
    if is_integer_box(space):
        return ((ids - tm.discrete_start).reshape(N, *space.shape) + space.low).astype(space.dtype)
    compand, offset, scale = continuous_transform(space, ACTION)
    y = continuous.from_bins(ids - tm.continuous_start, tm.num_bins)
    y = np.where(compand, continuous.inverse_mu_law(y), y) * scale + offset
    return np.clip(y.reshape(N, *space.shape), space.low, space.high).astype(space.dtype)


@_decode.register
def _(space: spaces.Dict, ids, tm):
    out, i = {}, 0
    for k in dict_keys(space):
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
