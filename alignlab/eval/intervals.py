"""95% bootstrap intervals over items, and paired differences between two runs on the same items.

An eval's rates are ratios of sums over *items* (a fact, a dish, a lookalike task… asked once or several times and
sampled several times): items, not samples, are the independent draws, so the bootstrap resamples items with
replacement (Efron & Tibshirani 1993, percentile interval). A paired difference resamples the same items in both
runs, which removes the items' own difficulty from the comparison (a paired bootstrap test).
"""

from __future__ import annotations

import numpy as np

N_BOOTSTRAP = 2000
LEVEL = 0.95


def _percentiles(draws: np.ndarray) -> list[float]:
    lo, hi = np.nanpercentile(draws, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return [float(lo), float(hi)]


def _indices(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(N_BOOTSTRAP, n))          # (R, n)


def ratio_ci(num: np.ndarray, den: np.ndarray, seed: int = 0) -> list[float] | None:
    """Interval of sum(num) / sum(den) when items are resampled; num, den (n,) per-item sums; None for no items."""
    if len(num) == 0:
        return None
    idx = _indices(len(num), seed)
    return _percentiles(num[idx].sum(1) / den[idx].sum(1))


def mean_ci(values: np.ndarray, seed: int = 0) -> list[float] | None:
    """Interval of the mean of per-item values."""
    return ratio_ci(values, np.ones_like(values), seed)


def gap_ci(num_a, den_a, num_b, den_b, seed: int = 0) -> list[float] | None:
    """Interval of |rate_a − rate_b| for two disjoint item sets (e.g. English and French), each resampled."""
    if len(num_a) == 0 or len(num_b) == 0:
        return None
    ia, ib = _indices(len(num_a), seed), _indices(len(num_b), seed + 1)
    return _percentiles(np.abs(num_a[ia].sum(1) / den_a[ia].sum(1) - num_b[ib].sum(1) / den_b[ib].sum(1)))


def paired_difference(a: dict[str, tuple[float, float]], b: dict[str, tuple[float, float]],
                      seed: int = 0) -> dict | None:
    """rate_a − rate_b on the items both runs have ({item: (num, den)}), with its paired 95% interval.

    Returns {"difference", "ci", "items"} or None when no item is shared."""
    items = sorted(set(a) & set(b))
    if not items:
        return None
    na, da = (np.array([a[i][k] for i in items], dtype=float) for k in (0, 1))
    nb, db = (np.array([b[i][k] for i in items], dtype=float) for k in (0, 1))
    idx = _indices(len(items), seed)
    diffs = na[idx].sum(1) / da[idx].sum(1) - nb[idx].sum(1) / db[idx].sum(1)
    return {"difference": float(na.sum() / da.sum() - nb.sum() / db.sum()), "ci": _percentiles(diffs),
            "items": len(items)}
