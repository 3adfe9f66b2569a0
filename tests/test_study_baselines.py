"""ncf_lib.study.baselines: ItemKNN, EASE, PureSVD and iALS against hand computations, tuned on
validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ncf_lib.dataset import EvalSet, build_dataset
from ncf_lib.errors import ConfigError
from ncf_lib.metrics import (
    PopularityScorer,
    evaluate,
)
from ncf_lib.ratings import load_ratings
from ncf_lib.study.baselines import (
    IALSConfig,
    ItemKNNScorer,
    PureSVD,
    ease,
    ials,
    tune_ease,
    tune_ials,
    tune_puresvd,
)


def _tiny_data():
    """3 users x 4 items: item 0 <- users 0, 1; item 1 <- users 0, 1, 2; item 2 <- user 2;
    item 3 <- user 1."""
    from ncf_lib.dataset import NCFData

    users, items = np.array([0, 0, 1, 1, 1, 2, 2]), np.array([0, 1, 0, 1, 3, 1, 2])
    test = EvalSet(np.array([0]), np.array([[2, 3]]))
    return NCFData(
        3,
        4,
        users,
        items,
        users * 4 + items,
        None,
        test,
        np.arange(3),
        np.arange(4),
        None,
        "tiny",
        0,
    )


def test_item_knn_cosine_by_hand():
    knn = ItemKNNScorer.fit(_tiny_data(), k=3)
    sim = knn.similarity
    assert sim[0, 1].item() == pytest.approx(2 / math.sqrt(2 * 3))
    assert sim[1, 2].item() == pytest.approx(1 / math.sqrt(3 * 1))
    assert sim[0, 2].item() == 0.0 and torch.all(sim.diagonal() == 0)
    assert torch.allclose(sim, sim.T)  # k = 3 keeps every neighbour: symmetric
    # user 0 (items 0, 1): item 2 scores sim(0,2) + sim(1,2), item 3 sim(0,3) + sim(1,3)
    scores = knn(torch.tensor([0]), torch.tensor([[2, 3]]))
    assert scores[0, 0].item() == pytest.approx(1 / math.sqrt(3))
    assert scores[0, 1].item() == pytest.approx(1 / math.sqrt(2) + 1 / math.sqrt(3))
    shrunk = ItemKNNScorer.fit(_tiny_data(), k=3, shrink=1.0).similarity
    assert shrunk[0, 1].item() == pytest.approx(2 / (math.sqrt(6) + 1))


def test_item_knn_keeps_k_neighbours_and_beats_popularity(small_data):
    d = small_data
    knn = ItemKNNScorer.fit(d, k=20)
    assert ((knn.similarity > 0).sum(dim=0) <= 20).all()
    assert evaluate(knn, d.test)["hr"] > evaluate(PopularityScorer.fit(d), d.test)["hr"]
    with pytest.raises(ValueError, match="k >= 1"):
        ItemKNNScorer.fit(d, k=0)


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


def _dense_ials(x: np.ndarray, config: IALSConfig) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares by its definition: each row of P solves
    ``min sum_i w_ui (x_ui - p_u . q_i)^2 + l2 ||p_u||^2`` with ``w = alpha`` on positives
    and 1 elsewhere, then each row of Q; starting where ``implicit`` starts."""
    rng = np.random.default_rng(config.seed)
    p = rng.random((x.shape[0], config.factors)) * 0.01
    q = rng.random((x.shape[1], config.factors)) * 0.01
    w = np.where(x > 0, config.alpha, 1.0)
    eye = config.l2 * np.eye(config.factors)
    for _ in range(config.iterations):
        p = np.stack([np.linalg.solve(q.T @ (w[u, :, None] * q) + eye, q.T @ (w[u] * x[u]))
                      for u in range(x.shape[0])])  # fmt: skip
        q = np.stack([np.linalg.solve(p.T @ (w[:, i, None] * p) + eye, p.T @ (w[:, i] * x[:, i]))
                      for i in range(x.shape[1])])  # fmt: skip
    return p, q


def test_ials_equals_alternating_weighted_least_squares(tiny):
    config = IALSConfig(factors=6, l2=2.0, alpha=4.0, iterations=3, seed=5)
    scorer = ials(tiny, config)
    p, q = _dense_ials(_matrix(tiny), config)
    np.testing.assert_allclose(scorer.users.numpy(), p, atol=1e-8)
    np.testing.assert_allclose(scorer.items.numpy(), q, atol=1e-8)
    users = torch.arange(tiny.n_users)
    items = torch.arange(tiny.n_items).expand(tiny.n_users, -1)
    np.testing.assert_allclose(scorer(users, items).numpy(), p @ q.T, atol=1e-8)


def test_ials_is_reproducible_and_tuned_on_validation(tiny):
    grid = {"factors": (4, 8), "l2": (1.0,), "alpha": (2.0, 10.0)}
    best = tune_ials(tiny, grid=grid, seed=1)
    assert (best.factors, best.l2, best.alpha) in {(f, 1.0, a) for f in (4, 8) for a in (2.0, 10.0)}
    hr = {
        (f, a): evaluate(ials(tiny, IALSConfig(f, 1.0, a, seed=1)), tiny.validation)["hr"]
        for f in (4, 8)
        for a in (2.0, 10.0)
    }
    assert hr[best.factors, best.alpha] == max(hr.values())  # chosen on validation
    again = ials(tiny, best)
    assert torch.equal(again.users, ials(tiny, best).users)  # the seed fixes the fit
    assert evaluate(again, tiny.test, 5)["hr"] > 5 / 21


def test_ials_rejects_meaningless_settings(tiny):
    with pytest.raises(ConfigError, match="alpha > 0"):
        ials(tiny, IALSConfig(alpha=0.0))
