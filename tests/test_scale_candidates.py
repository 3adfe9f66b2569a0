"""ncf_lib.scale.candidates: evaluation candidates for large catalogues, distinct, unseen and
uniform."""

from __future__ import annotations

import numpy as np

from ncf_lib.dataset import build_dataset
from ncf_lib.scale import candidates as candidates_module


def test_sparse_candidates_are_distinct_unseen_and_uniform():
    """One user who saw 40 of 100 items, drawn 20,000 times, beside one who saw 97 (the
    rounds give up on it and the dense sampler finishes it)."""
    rng = np.random.default_rng(0)
    seen = {0: rng.choice(100, 40, replace=False), 1: np.setdiff1d(np.arange(100), [5, 50, 95])}
    keys = np.sort(np.concatenate([u * 100 + items for u, items in seen.items()]))
    users = np.r_[np.zeros(20_000, dtype=np.int64), [1]]
    held = np.r_[np.full(20_000, seen[0][0]), [seen[1][0]]]
    got = candidates_module.sample_candidates_sparse(users, held, keys, 100, 3, rng)
    assert got.shape == (20_001, 4) and np.array_equal(got[:, 0], held)
    negatives = got[:, 1:]
    assert all(len(set(row)) == 3 for row in negatives.tolist())  # distinct in each row
    assert sorted(negatives[-1]) == [5, 50, 95]  # the only unseen items of user 1
    counts = np.bincount(negatives[:-1].ravel(), minlength=100)
    assert counts[seen[0]].sum() == 0  # never an item the user interacted with
    unseen = np.setdiff1d(np.arange(100), seen[0])
    expected = 20_000 * 3 / unseen.size  # 1000 per unseen item
    assert np.abs(counts[unseen] - expected).max() < 5 * np.sqrt(expected)  # about 4.6 sd


def test_large_catalogues_draw_candidates_by_rejection(small_ratings, monkeypatch):
    monkeypatch.setattr(candidates_module, "DENSE_CANDIDATE_ITEMS", 10)
    draw = candidates_module.large_catalogue_candidates
    data = build_dataset(small_ratings, num_ng_test=50, seed=7, draw=draw)
    again = build_dataset(small_ratings, num_ng_test=50, seed=7, draw=draw)
    assert data.test.candidates.shape == (data.n_users, 51)
    for eval_set in (data.test, data.validation):
        keys = eval_set.users[:, None] * data.n_items + eval_set.candidates[:, 1:]
        assert not np.isin(keys, data.train_keys).any()
        assert all(len(set(row)) == 51 for row in eval_set.candidates.tolist())
    assert np.array_equal(again.test.candidates, data.test.candidates)  # one seed, one draw
    dense = build_dataset(small_ratings, num_ng_test=50, seed=7)  # the default sampler
    assert not np.array_equal(dense.test.candidates, data.test.candidates)
