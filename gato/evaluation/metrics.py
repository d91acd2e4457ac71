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


# Published Atari reference scores, the set the field normalises with today (Agent57, Badia et
# al. 2020; DQN Zoo; rliable's Atari tables): game -> (random, human). Older papers used the
# human scores of Mnih et al. 2015, lower on some games (e.g. Boxing 4.3, Enduro 309.6). Human-normalised = (score - random) /
# (human - random), reported beside the expert-normalised score for Atari tasks.
ATARI_HUMAN = {
    "atari/atlantis": (12850.0, 29028.1), "atari/bowling": (23.1, 160.7), "atari/boxing": (0.1, 12.1),
    "atari/breakout": (1.7, 30.5), "atari/demonattack": (152.1, 1971.0), "atari/enduro": (0.0, 860.5),
    "atari/freeway": (0.0, 29.6), "atari/pong": (-20.7, 14.6),
}


def human_normalized(task: str, score: float) -> float | None:
    """Human-normalised score of an Atari task (None for other tasks)."""
    if task not in ATARI_HUMAN:
        return None
    random, human = ATARI_HUMAN[task]
    return (score - random) / (human - random)


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
