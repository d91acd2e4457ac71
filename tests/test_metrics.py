"""Score arithmetic against hand-computed values."""

import numpy as np
import pytest

from gato.evaluation.metrics import bootstrap_ci, iqm, normalized, summarize, threshold_curve


def test_normalized_by_hand():
    assert normalized(60.0, 10.0, 110.0) == 0.5
    assert normalized(-150.0, -200.0, -100.0) == 0.5  # negative returns (MountainCar-like)
    assert normalized(10.0, 10.0, 110.0) == 0.0
    assert normalized(5.0, None, 110.0) is None  # a task without reference scores
    assert normalized(5.0, 3.0, 3.0) is None  # never a division by zero


def test_iqm_by_hand():
    # 8 values: drop 2 from each end -> mean of [3, 4, 5, 100] = 28
    assert iqm([1, 2, 3, 4, 5, 100, 200, 300]) == pytest.approx(28.0)
    # 4 values: drop 1 from each end -> mean of [2, 3]
    assert iqm([4, 1, 3, 2]) == pytest.approx(2.5)
    assert iqm([7.0]) == 7.0
    with pytest.raises(ValueError):
        iqm([])


def test_bootstrap_ci_contains_the_statistic_and_shrinks_with_more_tasks():
    rng = np.random.default_rng(1)
    small, large = rng.normal(0.5, 0.2, 10), rng.normal(0.5, 0.2, 400)
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < hi_s - lo_s
    assert bootstrap_ci([0.3, 0.3, 0.3]) == (0.3, 0.3)


def test_summary_and_threshold_curve():
    s = summarize([0.0, 0.5, 1.0, 1.5])
    assert s["tasks"] == 4 and s["mean"] == 0.75 and s["median"] == 0.75 and s["iqm"] == 0.75
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
