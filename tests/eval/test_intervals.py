"""Bootstrap intervals over items and paired differences: hand-checkable cases and the properties they must have."""

import numpy as np
import pytest

from alignlab.eval.intervals import gap_ci, mean_ci, paired_difference, ratio_ci


def test_identical_items_give_a_zero_width_interval():
    # every item has the rate 3/4: any resample of items has the rate 3/4
    assert ratio_ci(np.array([3.0, 3.0, 3.0]), np.array([4.0, 4.0, 4.0])) == [0.75, 0.75]
    assert ratio_ci(np.array([]), np.array([])) is None


def test_the_interval_covers_the_estimate_and_shrinks_with_more_items():
    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 80, 320):
        p = rng.uniform(0, 1, n)                       # items of different difficulty, 16 samples each
        num, den = rng.binomial(16, p).astype(float), np.full(n, 16.0)
        lo, hi = ratio_ci(num, den)
        assert lo <= num.sum() / den.sum() <= hi
        widths.append(hi - lo)
    # the standard error falls as 1/sqrt(items): quadrupling the items about halves the width
    assert widths[1] < 0.65 * widths[0] and widths[2] < 0.65 * widths[1]


def test_a_95_interval_of_a_known_mean_has_the_normal_width():
    # 400 items whose values are ±1 at random: sd 1, so the 95% interval of the mean is ±1.96/sqrt(400) = ±0.098
    values = np.random.default_rng(1).choice([-1.0, 1.0], 400)
    lo, hi = mean_ci(values)
    assert (hi - lo) / 2 == pytest.approx(1.96 / 20, rel=0.1)


def test_paired_difference_removes_the_items_own_difficulty():
    # Items differ a lot in difficulty, but run a beats run b by exactly 1 sample in 10 on every item: the paired
    # interval is the point 0.1; unpaired intervals of the two runs overlap.
    rng = np.random.default_rng(2)
    base = rng.integers(0, 9, 50).astype(float)
    a = {f"i{k}": (base[k] + 1, 10.0) for k in range(50)}
    b = {f"i{k}": (base[k], 10.0) for k in range(50)}
    d = paired_difference(a, b)
    assert d["difference"] == pytest.approx(0.1) and d["ci"] == pytest.approx([0.1, 0.1]) and d["items"] == 50
    ca = ratio_ci(np.array([v[0] for v in a.values()]), np.array([v[1] for v in a.values()]))
    cb = ratio_ci(np.array([v[0] for v in b.values()]), np.array([v[1] for v in b.values()]))
    assert ca[0] < cb[1]                                   # unpaired, the two runs are not told apart
    assert paired_difference(a, {"other": (1.0, 2.0)}) is None          # no shared item


def test_gap_interval_of_two_languages():
    en = (np.array([8.0, 9.0, 10.0]), np.array([10.0, 10.0, 10.0]))
    fr = (np.array([5.0, 5.0]), np.array([10.0, 10.0]))
    lo, hi = gap_ci(*en, *fr)
    assert lo <= 0.4 <= hi and lo >= 0.3 - 1e-12 and hi <= 0.5 + 1e-12    # |0.8..1.0 − 0.5|
