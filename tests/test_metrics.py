"""Score arithmetic against hand-computed values."""

import numpy as np
import pytest

from gato.evaluation.metrics import mean_ci, normalized, performance_profile, summarize, threshold_curve


def test_normalized_by_hand():
    assert normalized(60.0, 10.0, 110.0) == 0.5
    assert normalized(-150.0, -200.0, -100.0) == 0.5  # negative returns (MountainCar-like)
    assert normalized(10.0, 10.0, 110.0) == 0.0
    assert normalized(5.0, None, 110.0) is None  # a task without reference scores
    assert normalized(5.0, 3.0, 3.0) is None  # never a division by zero


def test_summary_by_hand_follows_rliable():
    """Mean and median of the task means; IQM of every episode of every task (25% trimmed)."""
    tasks = [[0.0, 0.0, 0.0, 0.0], [1, 2, 3, 4], [5, 100, 200, 300]]
    s = summarize(tasks)
    assert s["tasks"] == 3
    assert s["mean"] == pytest.approx(np.mean([0.0, 2.5, 151.25]))
    assert s["median"] == pytest.approx(2.5)
    # 12 episodes: drop 3 from each end -> mean of [0, 1, 2, 3, 4, 5]
    assert s["iqm"] == pytest.approx(2.5)
    for k in ("mean", "median", "iqm"):
        lo, hi = s[f"{k}_ci"]
        assert lo <= s[k] <= hi


def test_intervals_contain_the_statistic_and_shrink_with_more_episodes():
    rng = np.random.default_rng(1)
    small, large = rng.normal(0.5, 0.2, 10), rng.normal(0.5, 0.2, 400)
    lo_s, hi_s = mean_ci(small)
    lo_l, hi_l = mean_ci(large)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < hi_s - lo_s
    assert mean_ci([0.3, 0.3, 0.3]) == pytest.approx([0.3, 0.3])
    tasks = [rng.normal(0.5, 0.2, 50) for _ in range(4)]
    assert summarize(tasks, seed=3) == summarize(tasks, seed=3)  # reproducible intervals


def test_performance_profile_counts_episodes_above_each_threshold():
    tasks = [[0.0, 1.0], [0.4, 0.6]]
    p = performance_profile(tasks, taus=[0.0, 0.5, 0.9])
    # scores above tau: tau 0 -> 1.0, 0.4, 0.6 (3 of 4); 0.5 -> 1.0, 0.6; 0.9 -> 1.0
    assert p["fraction"] == pytest.approx([0.75, 0.5, 0.25])
    assert all(lo <= f <= hi for lo, f, hi in zip(p["lower"], p["fraction"], p["upper"]))


def test_threshold_curve():
    t, counts = threshold_curve([0.0, 0.5, 0.49, 1.2], thresholds=[0.0, 0.5, 1.0])
    assert counts.tolist() == [4, 2, 1]
    t, counts = threshold_curve([0.2, 0.9])
    assert len(t) == 101 and counts[0] == 2 and counts[50] == 1 and counts[100] == 0


def test_atari_scores_are_also_human_normalised():
    from gato.evaluation.metrics import ATARI_HUMAN, human_normalized

    random, human = ATARI_HUMAN["atari/pong"]
    assert human_normalized("atari/pong", random) == 0.0 and human_normalized("atari/pong", human) == 1.0
    assert human_normalized("control/cartpole", 500.0) is None
    assert len(ATARI_HUMAN) == 8  # every Atari task we have
