"""Paired comparisons of two models evaluated on the same test users: the difference of a
per-user metric with a bootstrap interval over users, paired tests, Holm's correction for
several comparisons, and the smallest difference in HR a test set of a given size can detect.

Two models ranked on the same users are paired: a per-model error bar ignores that most users
are easy (or hard) for both, and the seeds' spread measures training noise, not the sampling
of users. These functions take per-user outcomes, ``(users,)`` arrays in the same user order
(hits as 0/1, NDCG values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from ncf_lib.errors import ConfigError

#: Bootstrap resamples drawn per block (bounds the memory: block x users indices).
BLOCK = 500


@dataclass(frozen=True)
class Difference:
    """``mean(a - b)`` over users, with its bootstrap interval (``low``, ``high``)."""

    mean: float
    low: float
    high: float


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size < 2:
        raise ConfigError(
            f"paired outcomes must be two (users,) arrays of one length of at least 2, got "
            f"shapes {a.shape} and {b.shape}"
        )
    return a, b


def paired_bootstrap(
    a, b, *, resamples: int = 10_000, level: float = 0.95, seed: int = 0, block: int = BLOCK
) -> Difference:
    """The mean of ``a - b`` over users with a percentile bootstrap interval at ``level``:
    users resampled with replacement, the same users for both models (vectorised, ``block``
    resamples at a time; the same draws as ``scipy.stats.bootstrap(..., paired=True,
    method="percentile", batch=block, rng=np.random.default_rng(seed))``)."""
    a, b = _pair(a, b)
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.concatenate(
        [
            diff[rng.integers(0, diff.size, (min(block, resamples - k), diff.size))].mean(axis=1)
            for k in range(0, resamples, block)
        ]
    )
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Difference(float(diff.mean()), float(low), float(high))


def mcnemar_p(hits_a, hits_b) -> float:
    """Two-sided exact McNemar test on paired hits: of the users hit by exactly one model, is
    each model equally likely to be that one? (a binomial test on the discordant users)"""
    a, b = _pair(hits_a, hits_b)
    only_a, only_b = int(((a > 0) & (b == 0)).sum()), int(((a == 0) & (b > 0)).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def wilcoxon_p(a, b) -> float:
    """Two-sided Wilcoxon signed-rank test on per-user differences (e.g. NDCG); users with no
    difference are dropped (``zero_method="wilcox"``); 1.0 when every difference is zero."""
    a, b = _pair(a, b)
    if np.all(a == b):
        return 1.0
    return float(stats.wilcoxon(a, b, zero_method="wilcox").pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the given order: compare each with the level
    to control the chance of any false difference among the comparisons."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p)
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * (p.size - np.arange(p.size))))
    adjusted = np.empty_like(p)
    adjusted[order] = stepped
    return adjusted


def detectable_difference(
    users: int, discordance: float, *, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest difference in hit rate (HR@K of two models) that a paired test on
    ``users`` detects with probability ``power`` at two-sided level ``alpha``, when a share
    ``discordance`` of users is hit by exactly one of the two models (McNemar's test, normal
    approximation: Connor, Biometrics 1987)."""
    if not 0 < discordance <= 1 or users < 1:
        raise ConfigError(f"need users >= 1 and 0 < discordance <= 1, got {users}, {discordance}")
    z_a, z_b = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)

    def needed(delta: float) -> float:
        return (z_a * np.sqrt(discordance) + z_b * np.sqrt(discordance - delta**2)) ** 2 / delta**2

    if needed(discordance) > users:  # not even the largest possible difference
        return float("nan")
    return float(optimize.brentq(lambda d: needed(d) - users, 1e-9, discordance))
