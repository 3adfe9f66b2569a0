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
import pandas as pd
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


def sign_test_p(a, b) -> float:
    """Two-sided sign test on paired outcomes: of the users where the two models differ, is
    each model equally likely to be the better one? (a binomial test on those users; on 0/1
    hits of one run each, McNemar's exact test)"""
    a, b = _pair(a, b)
    wins, losses = int((a > b).sum()), int((a < b).sum())
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5).pvalue)


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


def seed_outcomes(
    results: pd.DataFrame, ranks: pd.DataFrame, metric: str, study: str = "main", k: int = 10
) -> pd.DataFrame:
    """Each test user's ``metric`` in each run of ``study``: ``(users, runs)``, indexed by
    ``user_id``, columns ``(model, seed)``.

    Args:
        results: the grid's rows (``key``, ``model``, ``seed``, ``study``).
        ranks: the users' ranks of those runs (``key``, ``user_id``, ``rank``,
            ``full_rank``; :data:`ncf_lib.study.runner.RANK_COLUMNS`).
        metric: ``hr@k`` or ``ndcg@k`` (sampled candidates), ``full_hr@k`` or
            ``full_ndcg@k`` (all items); the ``@k`` must be ``k``.
    """
    kind = metric.removeprefix("full_")
    if kind not in (f"hr@{k}", f"ndcg@{k}"):
        raise ConfigError(f"metric must be hr@{k}, ndcg@{k} or full_ of either, got {metric!r}")
    runs = results.loc[results["study"] == study, ["key", "model", "seed"]]
    rows = ranks.merge(runs, on="key")
    rank = rows["full_rank" if metric.startswith("full_") else "rank"].to_numpy()
    hit = rank < k
    rows = rows.assign(value=hit / np.log2(rank + 2.0) if kind.startswith("ndcg") else hit * 1.0)
    table = rows.pivot_table(index="user_id", columns=["model", "seed"], values="value")
    missing = sorted(set(runs["key"]) - set(rows["key"]))
    if missing:
        raise ConfigError(
            f"no users' ranks for {len(missing)} run(s) of {study!r}: {missing[0]}, ..."
        )
    if table.isna().any().any():
        raise ConfigError(f"the runs of {study!r} were not tested on the same users")
    return table


def user_means(outcomes: pd.DataFrame) -> pd.DataFrame:
    """:func:`seed_outcomes` averaged over seeds: ``(users, models)``."""
    return outcomes.T.groupby(level="model", sort=False).mean().T


def compare_to_best(
    outcomes: pd.DataFrame, *, resamples: int = 10_000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Every model against the best one (the highest mean) on the same users.

    Args:
        outcomes: :func:`seed_outcomes` of one metric.

    Returns:
        One row per model, best first: ``model``, ``mean``, ``difference`` (model - best, the
        users' seed-averaged outcomes), its bootstrap interval ``low``, ``high``
        (:func:`paired_bootstrap`), ``p`` (:func:`sign_test_p` on hits,
        :func:`wilcoxon_p` on NDCG) and ``holm_p`` (:func:`holm` over the comparisons); the
        best's row has zeros and no p-values.
    """
    means = user_means(outcomes)
    values = means.to_numpy()
    hits = np.isin(outcomes.to_numpy(), (0.0, 1.0)).all()
    test = sign_test_p if hits else wilcoxon_p
    order = np.argsort(-values.mean(axis=0), kind="stable")
    best = values[:, order[0]]
    rows = []
    for j in order:
        d = paired_bootstrap(values[:, j], best, resamples=resamples, level=level, seed=seed)
        p = np.nan if j == order[0] else test(values[:, j], best)
        rows.append((means.columns[j], values[:, j].mean(), d.mean, d.low, d.high, p))
    table = pd.DataFrame(rows, columns=["model", "mean", "difference", "low", "high", "p"])
    table["holm_p"] = np.nan
    table.loc[1:, "holm_p"] = holm(table["p"].to_numpy()[1:])
    return table


def discordance(outcomes: pd.DataFrame, a: str, b: str) -> float:
    """The share of users hit by exactly one of models ``a`` and ``b``, in runs of the same
    seed, averaged over their common seeds (``outcomes``: :func:`seed_outcomes` of hits)."""
    seeds = sorted(set(outcomes[a].columns) & set(outcomes[b].columns))
    if not seeds:
        raise ConfigError(f"{a} and {b} have no seed in common")
    return float(np.mean([(outcomes[a][s] != outcomes[b][s]).mean() for s in seeds]))
