"""Evaluation candidates for large catalogues (MovieLens-20M and up): work proportional to
the candidates drawn, not to users x items."""

from __future__ import annotations

import numpy as np

from ncf_lib.dataset import sample_candidates

#: Largest catalogue whose candidates :func:`large_catalogue_candidates` draws with
#: :func:`~ncf_lib.dataset.sample_candidates` (a random score for every user x item:
#: MovieLens-1M and smaller, the same candidates as ``build_dataset``'s default); above it,
#: with :func:`sample_candidates_sparse`.
DENSE_CANDIDATE_ITEMS = 10_000


def large_catalogue_candidates(users, held_out, interacted_keys, n_items, num_ng_test, rng):
    """``build_dataset(..., draw=large_catalogue_candidates)``: the default sampler up to
    :data:`DENSE_CANDIDATE_ITEMS` items, :func:`sample_candidates_sparse` above (what the
    command line uses)."""
    small = n_items <= DENSE_CANDIDATE_ITEMS
    draw = sample_candidates if small else sample_candidates_sparse
    return draw(users, held_out, interacted_keys, n_items, num_ng_test, rng)


def sample_candidates_sparse(
    users: np.ndarray,
    held_out: np.ndarray,
    interacted_keys: np.ndarray,
    n_items: int,
    num_ng_test: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """:func:`~ncf_lib.dataset.sample_candidates` for large catalogues: the same
    distribution (uniform without replacement over each user's unseen items), another
    random stream, in time proportional to ``users x num_ng_test``, not ``users x n_items``.

    Each round draws ``2 * num_ng_test`` items with replacement for every user still short,
    and keeps, in draw order, those the user never interacted with and that are not already
    kept: the first ``num_ng_test`` distinct unseen items of a uniform random sequence, a
    uniform random subset. Users still short after 8 rounds (almost every item seen) get
    :func:`~ncf_lib.dataset.sample_candidates`.
    """
    out = np.empty((users.size, 1 + num_ng_test), dtype=np.int64)
    for start in range(0, users.size, 1 << 15):  # bounded memory: 32k users at a time
        part = slice(start, start + (1 << 15))
        out[part] = _unseen_by_rejection(
            users[part], held_out[part], interacted_keys, n_items, num_ng_test, rng
        )
    return out


def _unseen_by_rejection(users, held_out, interacted_keys, n_items, num_ng_test, rng):
    """The rounds of :func:`sample_candidates_sparse` for one block of users."""
    out = np.full((users.size, num_ng_test), -1, dtype=np.int64)
    filled = np.zeros(users.size, dtype=np.int64)
    todo = np.arange(users.size)
    for _ in range(8):
        if todo.size == 0:
            break
        draws = rng.integers(0, n_items, (todo.size, 2 * num_ng_test))
        keys = users[todo, None].astype(np.int64) * n_items + draws
        where = np.minimum(np.searchsorted(interacted_keys, keys), interacted_keys.size - 1)
        fresh = interacted_keys[where] != keys  # never interacted with
        row = np.concatenate([out[todo], draws], axis=1)  # kept so far, then the new draws
        order = np.argsort(row, axis=1, kind="stable")
        ranked = np.take_along_axis(row, order, 1)
        repeat = np.zeros_like(row, dtype=bool)  # a second copy of an item, in row order
        same = np.c_[np.zeros((row.shape[0], 1), bool), ranked[:, 1:] == ranked[:, :-1]]
        np.put_along_axis(repeat, order, same, 1)
        keep = fresh & ~repeat[:, num_ng_test:]
        slot = filled[todo, None] + np.cumsum(keep, axis=1) - 1
        keep &= slot < num_ng_test
        rows = np.broadcast_to(todo[:, None], keep.shape)
        out[rows[keep], slot[keep]] = draws[keep]
        filled[todo] += keep.sum(axis=1)
        todo = todo[filled[todo] < num_ng_test]
    if todo.size:
        out[todo] = sample_candidates(
            users[todo], held_out[todo], interacted_keys, n_items, num_ng_test, rng
        )[:, 1:]
    return np.concatenate([held_out[:, None].astype(np.int64), out], axis=1)
