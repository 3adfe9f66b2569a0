"""Generated MovieLens-like ratings, for tests, the tutorial's sample and speed work."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncf_lib.errors import ConfigError
from ncf_lib.memory import require, synthetic_bytes

#: Shape of MovieLens-1M, the default size of the synthetic data.
ML1M_SHAPE = (6040, 3706, 1_000_209)


def synthetic_ratings(
    n_users: int = ML1M_SHAPE[0],
    n_items: int = ML1M_SHAPE[1],
    n_interactions: int = ML1M_SHAPE[2],
    *,
    rank: int = 8,
    taste: float = 4.0,
    seed: int = 0,
) -> pd.DataFrame:
    """MovieLens-like ratings (:func:`~ncf_lib.ratings.read_ratings`' schema, ids from 1) that
    a recommender can learn from, fixed by ``seed``: long-tailed user activity (log-normal, at
    least ``min(20, mean / 2)`` each), Zipf-like popularity, user ``u`` picking item ``i``
    with probability proportional to ``popularity_i * exp(taste * p_u . q_i)`` (rank-``rank``
    tastes, Gumbel top-k), Unix times 2000-2003 unrelated to taste, ratings 1-5 growing with
    the affinity."""
    if n_users < 1 or n_items < 4 or n_interactions < 2 * n_users:
        raise ConfigError(
            f"synthetic:{n_users}x{n_items}x{n_interactions}: expected at least 1 user, 4 "
            "items and 2 interactions per user (synthetic:USERSxITEMSxINTERACTIONS)"
        )
    if n_interactions > n_users * n_items // 2:
        raise ConfigError(
            f"n_interactions={n_interactions:,} is more than half of users x items "
            f"({n_users:,} x {n_items:,}); expected a sparse matrix"
        )
    require(
        synthetic_bytes(n_users, n_items, n_interactions, rank),
        f"synthetic:{n_users}x{n_items}x{n_interactions}",
        "give a smaller shape",
    )
    rng = np.random.default_rng(seed)
    low = max(2, min(20, n_interactions // (2 * n_users)))
    weights = rng.lognormal(0.0, 1.0, n_users)
    counts = low + np.floor(weights / weights.sum() * (n_interactions - low * n_users)).astype(int)
    counts = np.minimum(counts, n_items // 2)
    short = n_interactions - counts.sum()
    while short > 0:  # hand out what rounding and the cap left over, a few users at a time
        room = np.flatnonzero(counts < n_items // 2)
        extra = rng.choice(room, size=min(short, room.size), replace=False)
        counts[extra] += 1
        short -= extra.size

    log_pop = -0.9 * np.log1p(rng.permutation(n_items)).astype(np.float32)
    p = rng.normal(0, 1 / np.sqrt(rank), (n_users, rank)).astype(np.float32)
    q = rng.normal(0, 1 / np.sqrt(rank), (n_items, rank)).astype(np.float32)

    users, items, affinity = [], [], []
    chunk = max(1, 4_000_000 // n_items)
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        aff = taste * (p[start:stop] @ q.T)
        gumbel = -np.log(-np.log(rng.random(aff.shape, dtype=np.float32) + 1e-12) + 1e-12)
        order = _top_in_order(-(log_pop + aff + gumbel), counts[start:stop].max())
        rows = np.repeat(np.arange(stop - start), counts[start:stop])
        cols = order[rows, _ranks_within(counts[start:stop])]
        users.append(rows + start)
        items.append(cols)
        affinity.append(aff[rows, cols])
    user = np.concatenate(users)
    item = np.concatenate(items)
    aff = np.concatenate(affinity)

    noisy = aff + rng.normal(0, 0.5, aff.size)
    rating = np.clip(np.digitize(noisy, np.quantile(noisy, [0.06, 0.17, 0.43, 0.78])) + 1, 1, 5)
    start_time = rng.integers(956_700_000, 1_046_400_000, n_users)  # 2000-04 .. 2003-02
    gaps = rng.exponential(3_600.0, user.size).astype(np.int64) + 1
    # Each user's items in a random order (unrelated to taste), one gap apart.
    order = np.lexsort((rng.random(user.size), user))
    running = np.cumsum(gaps[order])
    first = np.cumsum(counts) - counts
    clock = np.empty(user.size, dtype=np.int64)
    clock[order] = running - np.repeat(running[first] - gaps[order][first], counts)
    return pd.DataFrame(
        {
            "user_id": (user + 1).astype(np.int64),
            "item_id": (item + 1).astype(np.int64),
            "rating": rating.astype(np.float32),
            "timestamp": (start_time[user] + clock).astype(np.int64),
        }
    )


def _top_in_order(keys: np.ndarray, k: int) -> np.ndarray:
    """``(rows, k)`` columns of each row's ``k`` smallest ``keys``, smallest first: an
    ``argsort`` in time linear in the row (a partition, then a sort of ``k``)."""
    if 4 * k >= keys.shape[1]:  # most of the row anyway: one sort is faster
        return np.argsort(keys, axis=1)
    part = np.argpartition(keys, k - 1, axis=1)[:, :k]
    return np.take_along_axis(part, np.argsort(np.take_along_axis(keys, part, 1), axis=1), 1)


def _ranks_within(counts: np.ndarray) -> np.ndarray:
    """``0..c-1`` for each count ``c``, concatenated: ``[2, 3] -> [0, 1, 0, 1, 2]``."""
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(counts.sum()) - offsets


def synthetic_movies(item_ids: np.ndarray) -> pd.DataFrame:
    """Placeholder titles (``Synthetic movie 0042``) so recommendations print something."""
    return pd.DataFrame(
        {
            "item_id": item_ids.astype("int64"),
            "title": [f"Synthetic movie {i:04d}" for i in item_ids],
            "genres": "",
        }
    )
