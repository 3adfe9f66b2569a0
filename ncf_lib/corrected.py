"""Corrected sampled metrics: estimating full-ranking HR@k / NDCG@k from sampled ranks.

Krichene & Rendle, "On Sampled Metrics for Item Recommendation" (KDD 2020; CACM 65(7),
2022), show that a metric computed on the rank among ``m`` sampled negatives is a biased,
even order-reversing, estimate of the same metric over all ``n`` candidates, and correct
it: instead of applying the metric ``M`` to the sampled rank, apply a table ``M~`` of
``m + 1`` values, one per possible sampled rank, chosen so that ``M~(sampled rank)``
estimates ``M(true rank)``. This module derives the tables as that paper's section on
corrections describes (the equations below are written out here, not copied):

* ``A[r, j] = P(sampled rank j | true rank r)``: with ``r`` of the ``n - 1`` negatives
  above the held-out item and ``m`` of them drawn **without** replacement (as
  :func:`ncf_lib.dataset.sample_candidates` does), the sampled rank is hypergeometric;
* **bias-variance trade-off** with weight ``gamma`` and a prior ``p(r)`` over true ranks:
  minimise ``sum_r p(r) [ (E[M~ | r] - M(r))^2 + gamma Var[M~ | r] ]``; setting the
  gradient to zero gives the linear system
  ``((1 - gamma) A' P A + gamma diag(A' p)) M~ = A' P M`` (``P = diag(p)``);
* ``gamma = 0`` is the **minimal-bias** correction (weighted least squares); ``gamma = 1``
  minimises the mean squared error, ``M~(j) = E[M(r) | sampled rank j]``.

Ranks are 0-based throughout (0: the held-out item is first), like :mod:`ncf_lib.metrics`.
"""

from __future__ import annotations

import numpy as np


def _log_choose(log_fact: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log C(a, b)``, ``-inf`` where ``b`` is outside ``0..a``."""
    ok = (b >= 0) & (b <= a)
    a, b = np.where(ok, a, 0), np.where(ok, b, 0)
    return np.where(ok, log_fact[a] - log_fact[b] - log_fact[a - b], -np.inf)


def sampled_rank_distribution(n: int, m: int) -> np.ndarray:
    """``(n, m + 1)`` matrix ``A``: ``A[r, j]`` is the probability that an item with ``r``
    of the ``n - 1`` negatives above it has ``j`` of ``m`` sampled negatives above it."""
    if not 1 <= m <= n - 1:
        raise ValueError(f"m={m} sampled negatives must be between 1 and n - 1 = {n - 1}")
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    r = np.arange(n)[:, None]
    j = np.arange(m + 1)[None, :]
    log_p = (
        _log_choose(log_fact, r, j)
        + _log_choose(log_fact, n - 1 - r, m - j)
        - _log_choose(log_fact, np.array(n - 1), np.array(m))
    )
    return np.exp(log_p)


def hr_at(k: int, n: int) -> np.ndarray:
    """``(n,)`` HR@k of each true rank."""
    return (np.arange(n) < k).astype(float)


def ndcg_at(k: int, n: int) -> np.ndarray:
    """``(n,)`` NDCG@k of each true rank (one relevant item: ``1 / log2(rank + 2)``)."""
    ranks = np.arange(n)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def correction(
    metric: np.ndarray, m: int, *, gamma: float = 0.1, prior: np.ndarray | None = None
) -> np.ndarray:
    """The corrected metric table ``M~``, ``(m + 1,)``, for sampled ranks ``0..m``.

    Args:
        metric: ``(n,)`` the metric of each true rank (:func:`hr_at`, :func:`ndcg_at`).
        m: sampled negatives per held-out item.
        gamma: weight of the variance (0: minimal bias, whose table is ill-conditioned and
            whose estimates vary wildly; 1: minimal mean squared error; default 0.1).
        prior: ``(n,)`` weights of the true ranks (default uniform).
    """
    n = metric.size
    a = sampled_rank_distribution(n, m)
    p = np.full(n, 1.0 / n) if prior is None else np.asarray(prior, float) / np.sum(prior)
    weighted = a * p[:, None]
    lhs = (1.0 - gamma) * a.T @ weighted + gamma * np.diag(weighted.sum(axis=0))
    rhs = weighted.T @ metric
    return np.linalg.lstsq(lhs, rhs, rcond=None)[0]


def corrected_mean(sampled_ranks: np.ndarray, table: np.ndarray) -> float:
    """The corrected estimate of a metric: the mean of ``table`` at the sampled ranks."""
    return float(np.mean(table[np.asarray(sampled_ranks, dtype=np.int64)]))
