"""EASE and PureSVD against second implementations on tiny data, and their tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncf_lib.baselines import PureSVD, ease, tune_ease, tune_puresvd
from ncf_lib.dataset import build_dataset
from ncf_lib.metrics import evaluate
from ncf_lib.ratings import load_ratings


@pytest.fixture(scope="module")
def tiny():
    return build_dataset(load_ratings("synthetic:60x120x1200"), num_ng_test=20, seed=3)


def _matrix(data) -> np.ndarray:
    x = np.zeros((data.n_users, data.n_items))
    x[data.train_users, data.train_items] = 1.0
    return x


def test_ease_equals_one_ridge_regression_per_item(tiny):
    """EASE's closed form against its definition: item j regressed on all other items."""
    l2 = 30.0
    x = _matrix(tiny)
    b = np.zeros((tiny.n_items, tiny.n_items))
    for j in range(tiny.n_items):
        others = np.delete(np.arange(tiny.n_items), j)
        xo = x[:, others]
        b[others, j] = np.linalg.solve(xo.T @ xo + l2 * np.eye(others.size), xo.T @ x[:, j])
    np.testing.assert_allclose(ease(tiny, l2).weights.numpy(), b, atol=1e-9)


def test_puresvd_equals_the_numpy_projection(tiny):
    x = _matrix(tiny)
    v = np.linalg.svd(x, full_matrices=False)[2][:7].T
    scorer = PureSVD.fit(tiny).rank(7)
    users = torch.arange(tiny.n_users)
    items = torch.arange(tiny.n_items).expand(tiny.n_users, -1)
    np.testing.assert_allclose(scorer(users, items).numpy(), x @ v @ v.T, atol=1e-9)


def test_tuned_baselines_pick_from_their_grids_and_beat_random(tiny):
    l2 = tune_ease(tiny, grid=(1.0, 30.0, 1000.0))
    rank = tune_puresvd(tiny, grid=(2, 5, 500))
    assert l2 in (1.0, 30.0, 1000.0) and rank in (2, 5)  # 500 is above the 60 users: dropped
    for scorer in (ease(tiny, l2), PureSVD.fit(tiny).rank(rank)):
        assert evaluate(scorer, tiny.test, 5)["hr"] > 5 / 21  # random: k / candidates
