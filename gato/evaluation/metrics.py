"""Scores as the paper reports them: expert-normalised per task, aggregated per domain with
interquartile means and bootstrap confidence intervals, and the Figure 5 threshold curve."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def normalized(score: float, random: float | None, expert: float | None) -> float | None:
    """(score - random) / (expert - random); None when a reference is missing or degenerate
    (never a division by zero)."""
    if random is None or expert is None or not np.isfinite(expert - random) or expert == random:
        return None
    return float((score - random) / (expert - random))


def iqm(values) -> float:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end, as rliable)."""
    x = np.sort(np.asarray(values, np.float64))
    if x.size == 0:
        raise ValueError("IQM of no values")
    cut = int(np.floor(0.25 * x.size))
    return float(x[cut:x.size - cut].mean())


def bootstrap_ci(values, stat: Callable = np.mean, samples: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of `stat` over tasks."""
    x = np.asarray(values, np.float64)
    if x.size == 0:
        raise ValueError("confidence interval of no values")
    rng = np.random.default_rng(seed)
    stats = np.array([stat(x[rng.integers(0, x.size, x.size)]) for _ in range(samples)])
    a = (1 - confidence) / 2
    return float(np.quantile(stats, a)), float(np.quantile(stats, 1 - a))


def summarize(values) -> dict:
    """Mean, median and IQM of normalised scores, each with a 95% bootstrap interval."""
    x = np.asarray(values, np.float64)
    out = {"tasks": int(x.size)}
    for name, fn in (("mean", np.mean), ("median", np.median), ("iqm", iqm)):
        out[name] = float(fn(x))
        out[f"{name}_ci"] = list(bootstrap_ci(x, fn))
    return out


def threshold_curve(values, thresholds=None) -> tuple[np.ndarray, np.ndarray]:
    """Figure 5: for each threshold in [0, 1], the number of tasks scoring at least it."""
    t = np.linspace(0.0, 1.0, 101) if thresholds is None else np.asarray(thresholds, np.float64)
    x = np.asarray(values, np.float64)
    return t, (x[None, :] >= t[:, None]).sum(axis=1)
