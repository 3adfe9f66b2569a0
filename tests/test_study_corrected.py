"""ncf_lib.study.corrected: corrected sampled metrics (Krichene & Rendle, KDD 2020) on cases whose
full ranking is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncf_lib.metrics import full_ranks
from ncf_lib.study.corrected import (
    corrected_metrics,
    correction,
    hr_at,
    ndcg_at,
    pool_sizes,
    sampled_rank_distribution,
)

N, M = 1000, 99


def test_sampled_rank_distribution_is_the_hypergeometric_one():
    a = sampled_rank_distribution(N, M)
    assert a.shape == (N, M + 1) and np.allclose(a.sum(axis=1), 1.0)
    rng = np.random.default_rng(0)
    for rank in (0, 37, 500, N - 1):
        draws = rng.hypergeometric(rank, N - 1 - rank, M, size=200_000)
        empirical = np.bincount(draws, minlength=M + 1) / draws.size
        assert np.abs(empirical - a[rank]).max() < 0.01
    assert a[0, 0] == 1.0 and a[N - 1, M] == 1.0  # first stays first, last stays last


@pytest.mark.parametrize("metric_of", [hr_at, ndcg_at])
@pytest.mark.parametrize("model", ["good", "weak"])
def test_corrected_estimate_is_closer_to_the_full_metric_than_the_naive_one(metric_of, model):
    rng = np.random.default_rng(1)
    users = 3000
    if model == "good":  # most held-out items near the top
        true = np.minimum(rng.geometric(0.02, users) - 1, N - 1)
    else:
        true = rng.integers(0, N, users)
    full = metric_of(10, N)[true].mean()
    table = correction(metric_of(10, N), M)
    naive, corrected = [], []
    for _ in range(30):  # many samplings of the 99 negatives
        sampled = rng.hypergeometric(true, N - 1 - true, M)
        naive.append(metric_of(10, M + 1)[sampled].mean())
        corrected.append(table[sampled].mean())  # the table read at the sampled ranks
    assert abs(np.mean(corrected) - full) < abs(np.mean(naive) - full)
    assert abs(np.mean(corrected) - full) < 0.1 * full + 0.002  # close, not only closer


def test_gamma_one_is_the_posterior_mean():
    metric, prior = hr_at(10, N), np.linspace(2.0, 1.0, N)
    a = sampled_rank_distribution(N, M)
    expected = (a * prior[:, None]).T @ metric / (a * prior[:, None]).sum(axis=0)
    np.testing.assert_allclose(correction(metric, M, gamma=1.0, prior=prior), expected, atol=1e-9)


def test_pool_sizes_are_the_full_rankings_candidates(small_data):
    """A scorer that puts every held-out item last: its full rank is its pool size - 1."""
    held = torch.full((small_data.n_users,), -1, dtype=torch.long)
    for eval_set, exclude in ((small_data.test, small_data.validation), (small_data.test, None)):
        held[torch.from_numpy(eval_set.users)] = torch.from_numpy(eval_set.items)

        def last(users, items):
            return -(items == held[users][:, None]).double()

        ranks = full_ranks(last, small_data, eval_set, exclude=exclude).numpy()
        np.testing.assert_array_equal(pool_sizes(small_data, eval_set, exclude), ranks + 1)


def test_corrected_metrics_apply_each_users_own_table():
    """Against a per-user loop over :func:`correction`, with users of three pool sizes."""
    rng = np.random.default_rng(2)
    pools = rng.choice([300, 450, 1000], size=50)
    ranks = rng.integers(0, 20, size=50)
    got = corrected_metrics(ranks, pools, 19, k=5, gamma=0.2)
    hr = [correction(hr_at(5, n), 19, gamma=0.2)[r] for n, r in zip(pools, ranks)]
    gains = [correction(ndcg_at(5, n), 19, gamma=0.2)[r] for n, r in zip(pools, ranks)]
    assert got["hr"] == pytest.approx(np.mean(hr), abs=1e-9)
    assert got["ndcg"] == pytest.approx(np.mean(gains), abs=1e-9)


def test_corrected_metrics_are_closer_with_users_of_different_pool_sizes():
    rng = np.random.default_rng(3)
    pools = rng.integers(400, 1600, size=4000)
    true = np.minimum(rng.geometric(0.03, pools.size) - 1, pools - 1)
    full = {"hr": (true < 10).mean(), "ndcg": ndcg_at(10, 2000)[true].mean()}
    naive, corrected = [], []
    for _ in range(10):
        sampled = rng.hypergeometric(true, pools - 1 - true, M)
        naive.append({"hr": (sampled < 10).mean(), "ndcg": ndcg_at(10, M + 1)[sampled].mean()})
        corrected.append(corrected_metrics(sampled, pools, M))
    for metric in ("hr", "ndcg"):
        naive_error = abs(np.mean([n[metric] for n in naive]) - full[metric])
        corrected_error = abs(np.mean([c[metric] for c in corrected]) - full[metric])
        assert corrected_error < 0.2 * naive_error
