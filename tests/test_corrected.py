"""Corrected sampled metrics (Krichene & Rendle, KDD 2020) on a case whose full ranking is known."""

from __future__ import annotations

import numpy as np
import pytest

from ncf_lib.corrected import (
    corrected_mean,
    correction,
    hr_at,
    ndcg_at,
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
        corrected.append(corrected_mean(sampled, table))
    assert abs(np.mean(corrected) - full) < abs(np.mean(naive) - full)
    assert abs(np.mean(corrected) - full) < 0.1 * full + 0.002  # close, not only closer


def test_gamma_one_is_the_posterior_mean():
    metric, prior = hr_at(10, N), np.linspace(2.0, 1.0, N)
    a = sampled_rank_distribution(N, M)
    expected = (a * prior[:, None]).T @ metric / (a * prior[:, None]).sum(axis=0)
    np.testing.assert_allclose(correction(metric, M, gamma=1.0, prior=prior), expected, atol=1e-9)
