"""Scores as the paper reports them: expert-normalised per task, aggregated per domain with the
field's statistics (rliable, Agarwal et al. 2021: mean, median, interquartile mean, stratified
bootstrap intervals, performance profiles), and the paper's Figure 5 threshold curve."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import numpy as np


def normalized(score: float, random: float | None, expert: float | None) -> float | None:
    """(score - random) / (expert - random); None when a reference is missing or degenerate
    (never a division by zero)."""
    if random is None or expert is None or not np.isfinite(expert - random) or expert == random:
        return None
    return float((score - random) / (expert - random))


def episode_scores(returns, random: float | None, expert: float | None) -> list[float] | None:
    """Each episode's return, normalised; None when a reference is missing or degenerate. The
    report's interval of a task and `gato compare`'s differences are both over these."""
    if not len(returns) or normalized(0.0, random, expert) is None:
        return None
    return [normalized(float(x), random, expert) for x in returns]


def reference_means(ref: dict, name: str) -> tuple[float | None, float | None]:
    """Task `name`'s random and expert mean returns in a reference-scores table (gato.envs.scores);
    None where the table has none."""
    random, expert = (ref.get(name, {}).get(k, {}).get("mean") for k in ("random", "expert"))
    return random, expert


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


REPS = 2000  # bootstrap replicates of every interval


@contextlib.contextmanager
def _seeded(seed: int):
    """rliable resamples with NumPy's global generator (its random_state argument is not used
    for that): seed it for reproducible intervals, then give the caller's state back. Silences
    arch's notice about that argument."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        np.random.set_state(state)


def _interval(scores: np.ndarray, funcs: dict[str, Callable], seed: int) -> dict:
    """Point estimates and 95% stratified-bootstrap intervals (rliable) of `funcs` over an
    (episodes x tasks) score matrix: episodes are resampled within each task, the task set is
    fixed (it is the suite, not a sample of tasks)."""
    from rliable import library

    with _seeded(seed):
        point, ci = library.get_interval_estimates(
            {"x": scores}, lambda m: np.array([f(m) for f in funcs.values()]), reps=REPS)
    out = {}
    for i, name in enumerate(funcs):
        out[name], out[f"{name}_ci"] = float(point["x"][i]), [float(ci["x"][0, i]), float(ci["x"][1, i])]
    return out


def score_matrix(per_task: list) -> np.ndarray:
    """Per-episode scores of several tasks as the (episodes x tasks) matrix rliable takes; tasks
    with more episodes than the fewest keep their first ones."""
    n = min(len(v) for v in per_task)
    if n == 0:
        raise ValueError("aggregate of a task with no episodes")
    return np.stack([np.asarray(v[:n], np.float64) for v in per_task], axis=1)


def summarize(per_task: list, seed: int = 0) -> dict:
    """Normalised scores of a group of tasks (each a list of per-episode scores): rliable's mean
    (of task means), median (of task means) and IQM (the 25%-trimmed mean of every episode of
    every task), each with its interval."""
    from rliable import metrics

    m = score_matrix(per_task)
    return {"tasks": m.shape[1]} | _interval(m, {"mean": metrics.aggregate_mean, "median": metrics.aggregate_median,
                                                  "iqm": metrics.aggregate_iqm}, seed)


def mean_ci(episodes, seed: int = 0) -> list[float]:
    """95% bootstrap interval of one task's mean score over its episodes."""
    return _interval(np.asarray(episodes, np.float64)[:, None], {"mean": lambda m: m.mean()}, seed)["mean_ci"]


def difference_ci(a, b, paired: bool, seed: int = 0) -> tuple[float, list[float]]:
    """Mean of B - A over one task's episodes and its 95% bootstrap interval, over the first
    min(n_A, n_B) episodes: paired (episode i of both started from the same state) resamples the
    differences; unpaired resamples each side on its own."""
    n = min(len(a), len(b))
    a, b = np.asarray(a[:n], np.float64), np.asarray(b[:n], np.float64)
    if paired:  # one column of differences
        out = _interval((b - a)[:, None], {"d": lambda m: m.mean()}, seed)
    else:  # two columns: rliable resamples episodes within each column independently
        out = _interval(np.stack([a, b], axis=1), {"d": lambda m: m[:, 1].mean() - m[:, 0].mean()}, seed)
    return out["d"], out["d_ci"]


def performance_profile(per_task: list, taus=None, seed: int = 0) -> dict:
    """rliable's score distribution: for each threshold tau, the fraction of episodes (over all
    tasks, each task weighted equally) scoring above tau, with a 95% stratified-bootstrap band.
    Figure 5 counts tasks whose mean reaches a threshold; this shows how the episodes spread."""
    from rliable import library

    taus = np.linspace(0.0, 1.0, 51) if taus is None else np.asarray(taus, np.float64)
    with _seeded(seed):
        prof, ci = library.create_performance_profile({"x": score_matrix(per_task)}, taus, reps=REPS)
    return {"taus": taus.tolist(), "fraction": prof["x"].tolist(), "lower": ci["x"][0].tolist(),
            "upper": ci["x"][1].tolist()}


def threshold_curve(values, thresholds=None) -> tuple[np.ndarray, np.ndarray]:
    """Figure 5: for each threshold in [0, 1], the number of tasks scoring at least it."""
    t = np.linspace(0.0, 1.0, 101) if thresholds is None else np.asarray(thresholds, np.float64)
    x = np.asarray(values, np.float64)
    return t, (x[None, :] >= t[:, None]).sum(axis=1)
