"""ncf_lib.metrics: ranks, HR@K and NDCG@K by hand, ties and NaNs, sampled and full ranking, the
reference scorers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from ncf_lib.dataset import EvalSet, build_dataset
from ncf_lib.errors import NonFiniteScoresError
from ncf_lib.metrics import (
    PopularityScorer,
    RandomScorer,
    evaluate,
    full_ranking_metrics,
    full_ranks,
    hit_rate,
    ndcg,
    rank_of_first,
    sampled_metrics,
    sampled_ranks,
    standard_errors,
)
from ncf_lib.ratings import Ratings
from ncf_lib.synthetic import synthetic_ratings


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


def _table_scorer(n_users: int, n_items: int, seed: int = 0):
    """A fixed random score per (user, item), and the scorer reading it."""
    table = torch.from_numpy(np.random.default_rng(seed).random((n_users, n_items)))

    def score(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return table[users[:, None], items]

    return table.numpy(), score


def _direct(ranks: np.ndarray, k: int = 10) -> dict[str, float]:
    gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return {"hr": float((ranks < k).mean()), "ndcg": float(gains.mean())}


@pytest.mark.numbers
def test_evaluation_over_many_chunks_equals_a_direct_computation(wide):
    table, score = _table_scorer(wide.n_users, wide.n_items)
    for eval_set in (wide.validation, wide.test):
        scores = table[eval_set.users[:, None], eval_set.candidates]
        ranks = (scores[:, 1:] >= scores[:, :1]).sum(axis=1)
        got = evaluate(score, eval_set)
        assert got == pytest.approx(_direct(ranks), abs=1e-12)


def _full_ranks_directly(table, data, eval_set, exclude):
    """Rank of each held-out item among the items the user did not train on (nor hold out
    in ``exclude``), ties against it."""
    known = np.zeros((data.n_users, data.n_items), dtype=bool)
    known[data.train_users, data.train_items] = True
    if exclude is not None:
        known[exclude.users, exclude.items] = True
    users, held = eval_set.users, eval_set.items
    scores = table[users]
    beats = (scores >= scores[np.arange(users.size), held][:, None]) & ~known[users]
    beats[np.arange(users.size), held] = False
    return beats.sum(axis=1)


@pytest.mark.numbers
def test_full_ranking_over_many_chunks_equals_a_direct_computation(wide):
    table, score = _table_scorer(wide.n_users, wide.n_items, seed=1)
    want = _full_ranks_directly(table, wide, wide.test, wide.validation)
    got = full_ranks(score, wide, wide.test, exclude=wide.validation).numpy()
    assert np.array_equal(got, want)
    metrics = full_ranking_metrics(score, wide, wide.test, 10, exclude=wide.validation)
    assert metrics["hr"] == pytest.approx(_direct(want)["hr"], abs=1e-12)


@pytest.mark.numbers
def test_users_without_a_validation_item_are_ranked_with_validation_excluded():
    """Users with two ratings have a test item but no validation item: excluding the
    validation items must not touch their rows (nor borrow another user's item)."""
    frame = synthetic_ratings(300, 200, 6000, seed=5)
    ids = np.sort(frame["user_id"].unique())
    few = frame["user_id"].isin([*ids[::3], ids[-1]])  # every third user and the last ...
    frame = frame[~few | (frame.groupby("user_id").cumcount() < 2)]  # ... keeps two ratings
    data = build_dataset(Ratings(frame, None, "two-rating users"), seed=2)
    lacking = np.setdiff1d(data.test.users, data.validation.users)
    assert lacking.size > 50 and data.test.users.max() in lacking  # the cases under test
    table, score = _table_scorer(data.n_users, data.n_items, seed=4)
    want = _full_ranks_directly(table, data, data.test, data.validation)
    got = full_ranks(score, data, data.test, exclude=data.validation).numpy()
    assert np.array_equal(got, want)


@pytest.mark.numbers
def test_a_constant_scorer_ranks_every_held_out_item_last(wide):
    def constant(users, items):
        return torch.zeros(items.shape)

    assert evaluate(constant, wide.test) == {"hr": 0.0, "ndcg": 0.0}
    full = full_ranking_metrics(constant, wide, wide.test, 10, exclude=wide.validation)
    assert full["hr"] == 0.0 and full["ndcg"] == 0.0


@pytest.mark.numbers
def test_per_user_ranks_are_the_ranks_the_metrics_count(wide):
    from ncf_lib.metrics import per_user_ranks

    table, score = _table_scorer(wide.n_users, wide.n_items, seed=2)
    rows = per_user_ranks(score, wide)
    assert rows.index.equals(pd.RangeIndex(len(rows)))  # one row per held-out item, numbered
    test = rows[rows["split"] == "test"]
    assert test["user_id"].tolist() == wide.user_ids[wide.test.users].tolist()
    assert test["item_id"].tolist() == wide.item_ids[wide.test.items].tolist()
    scores = table[wide.test.users[:, None], wide.test.candidates]
    assert np.array_equal(test["rank"], (scores[:, 1:] >= scores[:, :1]).sum(axis=1))
    full = _full_ranks_directly(table, wide, wide.test, wide.validation)
    assert np.array_equal(test["full_rank"], full)
    val = rows[rows["split"] == "validation"]
    assert np.array_equal(
        val["full_rank"], _full_ranks_directly(table, wide, wide.validation, None)
    )


@pytest.mark.numbers
def test_full_ranking_defaults_to_hr_at_10(wide):
    table, score = _table_scorer(wide.n_users, wide.n_items, seed=3)
    want = _direct(_full_ranks_directly(table, wide, wide.test, None))
    got = full_ranking_metrics(score, wide, wide.test)
    assert got == pytest.approx({**want, "recall": want["hr"]}, abs=1e-12)


@pytest.mark.numbers
def test_standard_errors_and_the_default_k_count_a_rank_of_10_as_a_miss():
    from ncf_lib.metrics import sampled_metrics, standard_errors

    ranks = torch.tensor([0, 9, 10, 50])  # two hits in the top 10, two misses
    hits = np.array([1.0, 1.0, 0.0, 0.0])
    gains = np.array([1.0, 1 / np.log2(11), 0.0, 0.0])
    errors = standard_errors(ranks, 10)
    assert errors["hr"] == pytest.approx(hits.std(ddof=1) / 2)
    assert errors["ndcg"] == pytest.approx(gains.std(ddof=1) / 2)
    scores = torch.tensor([[0.5] + [1.0] * r + [0.0] * (60 - r) for r in (0, 9, 10, 50)])
    assert sampled_metrics(scores) == pytest.approx({"hr": 0.5, "ndcg": gains.mean()})


@pytest.mark.numbers
def test_a_nan_held_out_score_ranks_last():
    scores = torch.tensor([[float("nan"), 0.1, -5.0], [float("nan"), float("nan"), 0.0]])
    assert rank_of_first(scores).tolist() == [2, 2]


@pytest.mark.numbers
def test_k_must_be_below_the_number_of_candidates(small_data):
    scorer = RandomScorer(seed=0)
    n = small_data.test.candidates.shape[1]
    last = sampled_ranks(scorer, small_data.test) == n - 1
    assert 0 < last.sum() < 0.1 * last.numel()  # this seed ranks a few held-out items last
    hr = evaluate(scorer, small_data.test, n - 1)["hr"]
    assert hr == pytest.approx(1 - float(last.float().mean()))  # all but the last-ranked
    with pytest.raises(ValueError, match=f"top_k \\(--top-k\\) must be at least 1 and below the "
                                         f"{n} candidates per user, got {n}"):  # fmt: skip
        evaluate(scorer, small_data.test, n)
    with pytest.raises(ValueError, match=f"below the {small_data.n_items} items, got"):
        full_ranking_metrics(scorer, small_data, small_data.test, small_data.n_items)


@pytest.mark.numbers
@pytest.mark.parametrize("bad", [torch.inf, -torch.inf])
def test_a_user_with_infinite_scores_is_named_in_the_whole_message(small_data, bad):
    """One user's scores out of range: the message counts that user among all of them and
    says why the metrics are refused."""
    first = int(small_data.test.users[0])

    def scorer(users, items):
        scores = torch.rand(items.shape)
        scores[users == first] = bad
        return scores

    n = small_data.test.users.size
    message = (
        f"the model scores NaN or infinity for 1 of {n} users (its weights are not finite: "
        "a diverged or damaged model); metrics of such scores would mean nothing"
    )
    with pytest.raises(NonFiniteScoresError) as refused:
        evaluate(scorer, small_data.test, k=10)
    assert str(refused.value) == message
