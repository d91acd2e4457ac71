"""Continuous values -> bin indices and back (paper, section 2.1).

Values are mu-law companded into [-1, 1] when they are not already there, clipped, and
discretised into `num_bins` uniform bins. Decoding returns the bin centre mapped back through
the inverse mu-law, so decode(encode(x)) is within half a bin of x (in companded space).
"""

from __future__ import annotations

import numpy as np

MU = 100.0
M = 256.0
_LOG_DEN = np.log(M * MU + 1.0)


def mu_law(x: np.ndarray) -> np.ndarray:
    """F(x) = sgn(x) ln(|x| mu + 1) / ln(M mu + 1): maps [-M, M] onto [-1, 1]."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.log1p(np.abs(x) * MU) / _LOG_DEN


def inverse_mu_law(y: np.ndarray) -> np.ndarray:
    """Exact inverse of `mu_law` on [-1, 1]."""
    y = np.asarray(y, dtype=np.float64)
    return np.sign(y) * np.expm1(np.abs(y) * _LOG_DEN) / MU


def check_finite(x: np.ndarray, name: str) -> None:
    """NaN or inf is never silently clipped: it is an error naming the value."""
    bad = ~np.isfinite(x)
    if bad.any():
        idx = np.argwhere(bad)[0].tolist()
        raise ValueError(f"{name}: non-finite value {x[tuple(idx)]!r} at index {idx}")


def to_bins(y: np.ndarray, num_bins: int) -> np.ndarray:
    """Values in [-1, 1] (clipped) -> bin index in [0, num_bins)."""
    y = np.clip(np.asarray(y, dtype=np.float64), -1.0, 1.0)
    return np.minimum(((y + 1.0) * 0.5 * num_bins).astype(np.int64), num_bins - 1)


def from_bins(bins: np.ndarray, num_bins: int) -> np.ndarray:
    """Bin index -> bin centre in [-1, 1]."""
    bins = np.asarray(bins, dtype=np.int64)
    if bins.size and (bins.min() < 0 or bins.max() >= num_bins):
        raise ValueError(f"bin index outside [0, {num_bins}): {bins.min()}..{bins.max()}")
    return (bins + 0.5) / num_bins * 2.0 - 1.0


def encode(x: np.ndarray, num_bins: int, compand: bool = True, name: str = "value") -> np.ndarray:
    """Continuous values -> bins. `compand=False` for values already in [-1, 1] (e.g. actions)."""
    x = np.asarray(x, dtype=np.float64)
    check_finite(x, name)
    return to_bins(mu_law(x) if compand else x, num_bins)


def decode(bins: np.ndarray, num_bins: int, compand: bool = True) -> np.ndarray:
    """Bins -> values: the bin centre, through the inverse mu-law when `compand`."""
    y = from_bins(bins, num_bins)
    return inverse_mu_law(y) if compand else y
