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

Each user has its own ``n`` (the items it did not train on), so :func:`corrected_metrics`
applies one table per distinct ``n``. Ranks are 0-based throughout (0: the held-out item is
first), like :mod:`ncf_lib.metrics`.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ncf_lib.dataset import EvalSet, NCFData


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
        metric: ``(n,)`` the metric of each true rank (:func:`hr_at`, :func:`ndcg_at`), or
            ``(n, t)`` for ``t`` metrics at once (then the result is ``(m + 1, t)``).
        m: sampled negatives per held-out item.
        gamma: weight of the variance (0: minimal bias, whose table is ill-conditioned and
            whose estimates vary wildly; 1: minimal mean squared error; default 0.1).
        prior: ``(n,)`` weights of the true ranks (default uniform).
    """
    n = metric.shape[0]
    a = sampled_rank_distribution(n, m)
    p = np.full(n, 1.0 / n) if prior is None else np.asarray(prior, float) / np.sum(prior)
    weighted = a * p[:, None]
    lhs = (1.0 - gamma) * a.T @ weighted + gamma * np.diag(weighted.sum(axis=0))
    rhs = weighted.T @ metric
    return np.linalg.lstsq(lhs, rhs, rcond=None)[0]


@cache
def _tables(n: int, m: int, k: int, gamma: float) -> np.ndarray:
    """``(m + 1, 2)`` corrected HR@k and NDCG@k tables for pools of ``n`` items (cached: every
    run on one split shares its pool sizes)."""
    tables = correction(np.stack([hr_at(k, n), ndcg_at(k, n)], axis=1), m, gamma=gamma)
    tables.flags.writeable = False
    return tables


def pool_sizes(data: NCFData, eval_set: EvalSet, exclude: EvalSet | None = None) -> np.ndarray:
    """``(n,)`` how many items each evaluated user's held-out item is ranked among in the
    full ranking (:func:`ncf_lib.metrics.full_ranking_metrics` with the same ``exclude``):
    all items but the user's training items and ``exclude``'s held-out item."""
    trained = np.bincount(data.train_keys // data.n_items, minlength=data.n_users)  # unique keys
    trained = trained[eval_set.users]
    if exclude is not None:
        has = np.isin(eval_set.users, exclude.users)
        trained = trained + has
    return data.n_items - trained


def corrected_metrics(
    sampled_ranks: np.ndarray, pools: np.ndarray, m: int, k: int = 10, gamma: float = 0.1
) -> dict[str, float]:
    """Corrected HR@k and NDCG@k (``{"hr", "ndcg"}``) of sampled ranks.

    Args:
        sampled_ranks: ``(users,)`` 0-based rank of each held-out item among its ``m``
            sampled negatives (:func:`ncf_lib.metrics.rank_of_first`).
        pools: ``(users,)`` items each held-out item competes with in the full ranking,
            itself included (:func:`pool_sizes`); the negatives were drawn from them.
        m: sampled negatives per user.
        k: cut-off.
        gamma: the bias-variance weight of :func:`correction`.
    """
    ranks = np.asarray(sampled_ranks, dtype=np.int64)
    sizes, which = np.unique(np.asarray(pools, dtype=np.int64), return_inverse=True)
    tables = np.stack([_tables(int(n), m, k, float(gamma)) for n in sizes])  # (sizes, m+1, 2)
    values = tables[which.ravel(), ranks]  # (users, 2)
    return {"hr": float(values[:, 0].mean()), "ndcg": float(values[:, 1].mean())}
