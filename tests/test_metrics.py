"""Metrics on hand-computed cases, ties, full ranking, and the reference scorers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ncf_lib.dataset import EvalSet
from ncf_lib.errors import NonFiniteScoresError
from ncf_lib.metrics import (
    PopularityScorer,
    RandomScorer,
    evaluate,
    full_ranking_metrics,
    hit_rate,
    ndcg,
    rank_of_first,
    sampled_metrics,
    standard_errors,
)
from ncf_lib.study.baselines import ItemKNNScorer


def test_hand_computed_ranks_hr_ndcg():
    scores = torch.tensor(
        [
            [0.9, 0.1, 0.2, 0.3],  # held-out first: rank 0
            [0.5, 0.6, 0.7, 0.1],  # two above: rank 2
            [0.1, 0.2, 0.3, 0.4],  # last: rank 3
        ]
    )
    ranks = rank_of_first(scores)
    assert ranks.tolist() == [0, 2, 3]
    assert hit_rate(ranks, 3) == pytest.approx(2 / 3)
    assert ndcg(ranks, 3) == pytest.approx((1 + 1 / math.log2(4)) / 3)
    assert sampled_metrics(scores, k=1) == {
        "hr": pytest.approx(1 / 3),
        "ndcg": pytest.approx(1 / 3),
    }


def test_ties_count_against_the_held_out_item():
    constant = torch.ones(5, 100)
    assert rank_of_first(constant).tolist() == [99] * 5
    assert sampled_metrics(constant, k=10) == {"hr": 0.0, "ndcg": 0.0}
    one_tie = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert rank_of_first(one_tie).tolist() == [1]


def test_nan_scores_never_hit(small_data):
    # A diverged model scores NaN; NaN compares false, so it would rank first if unhandled.
    nan = torch.full((3, 100), torch.nan)
    assert sampled_metrics(nan, k=10) == {"hr": 0.0, "ndcg": 0.0}
    held_nan = torch.tensor([[torch.nan, 0.5, 0.2]])
    assert rank_of_first(held_nan).tolist() == [2]
    assert rank_of_first(torch.tensor([[0.5, torch.nan, 0.2]])).tolist() == [0]
    # ... but evaluating a model that scores NaN is an error, not HR 0.000:
    scorer = lambda users, items: torch.full(items.shape, torch.nan)  # noqa: E731
    with pytest.raises(NonFiniteScoresError, match="NaN or infinity for 200 of 200 users"):
        evaluate(scorer, small_data.test, k=10)
    with pytest.raises(NonFiniteScoresError, match="NaN or infinity for"):
        full_ranking_metrics(scorer, small_data, small_data.test, k=10)


def test_standard_errors_by_hand():
    ranks = torch.tensor([0, 1, 15, 3])  # hits 1, 1, 0, 1; gains 1, 1/log2(3), 0, 1/log2(5)
    se = standard_errors(ranks, 10)
    hits = np.array([1.0, 1.0, 0.0, 1.0])
    gains = np.array([1.0, 1 / math.log2(3), 0.0, 1 / math.log2(5)])
    assert se["hr"] == pytest.approx(hits.std(ddof=1) / 2)
    assert se["ndcg"] == pytest.approx(gains.std(ddof=1) / 2)
    assert standard_errors(torch.zeros(5, dtype=torch.long), 10) == {"hr": 0.0, "ndcg": 0.0}


def test_ndcg_uses_log2():
    assert ndcg(torch.tensor([0]), 10) == 1.0  # natural log would give 1.44
    assert ndcg(torch.tensor([1]), 10) == pytest.approx(1 / math.log2(3))


def test_evaluate_on_an_eval_set_matches_hand_scores():
    eval_set = EvalSet(np.array([0, 1]), np.array([[3, 0, 1], [2, 3, 0]]))
    fixed = torch.tensor([0.0, 1.0, 2.0, 3.0])  # item i scores i
    scorer = lambda users, items: fixed[items]  # noqa: E731
    # user 0: item 3 vs 0, 1 -> rank 0; user 1: item 2 vs 3, 0 -> rank 1
    assert evaluate(scorer, eval_set, k=1) == {"hr": 0.5, "ndcg": 0.5}


def test_full_ranking_excludes_training_items(small_data):
    d = small_data
    # A scorer that loves exactly the training items: they must not count against the test item.
    train_love = torch.zeros(d.n_users, d.n_items)
    train_love[torch.from_numpy(d.train_users), torch.from_numpy(d.train_items)] = 10.0
    test_bonus = torch.zeros_like(train_love)
    test_bonus[torch.from_numpy(d.test.users), torch.from_numpy(d.test.items)] = 5.0
    val_love = torch.zeros_like(train_love)
    val_love[torch.from_numpy(d.validation.users), torch.from_numpy(d.validation.items)] = 7.0
    table = train_love + test_bonus + val_love
    scorer = lambda users, items: table[users[:, None], items]  # noqa: E731
    full = full_ranking_metrics(scorer, d, d.test, k=1, exclude=d.validation)
    assert full == {"hr": 1.0, "ndcg": 1.0, "recall": 1.0}
    without_exclude = full_ranking_metrics(scorer, d, d.test, k=1)
    assert without_exclude["hr"] == 0.0  # the validation item outranks it when not excluded


def test_reference_scorers(small_data):
    d = small_data
    pop = PopularityScorer.fit(d)
    counts = np.bincount(d.train_items, minlength=d.n_items)
    items = torch.tensor([[0, 1, 2]])
    assert pop(torch.tensor([0]), items).tolist() == [counts[:3].tolist()]
    random_hr = evaluate(RandomScorer(0), d.test)["hr"]
    assert 0.02 < random_hr < 0.2  # about 10/100
    assert evaluate(pop, d.test)["hr"] > random_hr + 0.1


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
