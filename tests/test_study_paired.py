"""ncf_lib.study.paired: paired differences over users, their tests, Holm, the detectable
difference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ncf_lib.errors import ConfigError
from ncf_lib.study.paired import (
    detectable_difference,
    discordance,
    holm,
    paired_bootstrap,
    seed_outcomes,
    sign_test_p,
    user_means,
    wilcoxon_p,
)


def _models(users: int, p_a: float, p_b: float, seed: int):
    """Per-user hits of two correlated models: a shared difficulty, then each model's draw."""
    rng = np.random.default_rng(seed)
    easy = rng.random(users)
    a = (easy < p_a).astype(float)
    b = np.where(rng.random(users) < 0.7, easy < p_b, rng.random(users) < p_b).astype(float)
    return a, b


@pytest.mark.parametrize("seed, block", [(0, 500), (3, 128)])
def test_the_bootstrap_interval_is_scipys(seed, block):
    a, b = _models(300, 0.6, 0.5, seed=seed)
    ours = paired_bootstrap(a, b, resamples=2000, seed=seed, block=block)
    theirs = stats.bootstrap(
        (a, b), lambda x, y, axis: np.mean(x - y, axis=axis), paired=True, n_resamples=2000,
        batch=block, method="percentile", rng=np.random.default_rng(seed),
    )  # fmt: skip
    ci = theirs.confidence_interval
    assert np.allclose([ours.low, ours.high], [ci.low, ci.high], rtol=0, atol=1e-12)
    assert ours.mean == pytest.approx(np.mean(a - b))


def test_a_real_difference_is_detected_and_none_is_not():
    """At 2,000 users: 10 points of HR apart is found by every statistic; two draws of the
    same model are not told apart (fixed seeds, so these outcomes are fixed)."""
    a, b = _models(2000, 0.6, 0.5, seed=1)
    diff = paired_bootstrap(a, b, seed=1)
    assert 0 < diff.low < diff.mean < diff.high and sign_test_p(a, b) < 0.01
    assert wilcoxon_p(a, b) < 0.01
    same_a, same_b = _models(2000, 0.55, 0.55, seed=2)
    same = paired_bootstrap(same_a, same_b, seed=2)
    assert same.low < 0 < same.high and sign_test_p(same_a, same_b) > 0.05
    assert sign_test_p(a, a) == 1.0 and wilcoxon_p(a, a) == 1.0


def test_holm_adjusts_in_the_given_order():
    p = [0.01, 0.04, 0.03, 0.005]  # sorted: .005 x4, .01 x3, .03 x2, .04 x1, then running max
    assert np.allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    assert np.allclose(holm([0.5, 0.9]), [1.0, 1.0])


@pytest.mark.parametrize("users, discordance", [(943, 0.3), (6040, 0.2)])
def test_the_detectable_difference_has_the_stated_power(users, discordance):
    """Simulated McNemar tests at the returned difference reject in about 80% of test sets."""
    delta = detectable_difference(users, discordance)
    assert detectable_difference(users * 4, discordance) < delta < discordance
    rng = np.random.default_rng(0)
    p10, p01 = (discordance + delta) / 2, (discordance - delta) / 2
    counts = rng.multinomial(users, [p10, p01, 1 - discordance], size=4000)
    b, c = counts[:, 0], counts[:, 1]
    z = np.abs(b - c) / np.sqrt(np.maximum(b + c, 1))
    assert np.mean(z > stats.norm.ppf(0.975)) == pytest.approx(0.8, abs=0.04)


def test_bad_outcomes_are_refused():
    with pytest.raises(ConfigError, match="two \\(users,\\) arrays of one length"):
        paired_bootstrap([1, 0, 1], [1, 0])
    with pytest.raises(ConfigError, match="0 < discordance <= 1"):
        detectable_difference(100, 0.0)


def _runs():
    """Two models, two seeds, three users: per-run ranks and the grid's rows."""
    ranks = pd.DataFrame(
        {
            "user_id": [1, 2, 3] * 4,
            "rank": [0, 12, 3, 0, 9, 40, 50, 1, 3, 10, 2, 0],
            "full_rank": [5, 30, 9, 0, 90, 40, 60, 1, 3, 10, 2, 9],
            "key": ["a0"] * 3 + ["a1"] * 3 + ["b0"] * 3 + ["b1"] * 3,
        }
    )
    results = pd.DataFrame(
        {"key": ["a0", "a1", "b0", "b1"], "model": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1],
         "study": "main"}
    )  # fmt: skip
    return results, ranks


def test_seed_outcomes_are_each_users_metric_in_each_run():
    results, ranks = _runs()
    hits = seed_outcomes(results, ranks, "hr@10")
    assert hits["a"][0].tolist() == [1, 0, 1] and hits["b"][1].tolist() == [0, 1, 1]
    assert seed_outcomes(results, ranks, "full_hr@10")["a"][1].tolist() == [1, 0, 0]
    gains = seed_outcomes(results, ranks, "ndcg@10")["a"][0]
    assert np.allclose(gains, [1.0, 0.0, 1 / np.log2(5)])
    assert user_means(hits)["a"].tolist() == [1.0, 0.5, 0.5]
    assert discordance(hits, "a", "b") == pytest.approx(np.mean([2 / 3, 2 / 3]))


def test_seed_outcomes_refuse_runs_without_every_users_ranks():
    results, ranks = _runs()
    with pytest.raises(ConfigError, match="no users' ranks for 1 run.*b1"):
        seed_outcomes(results, ranks[ranks["key"] != "b1"], "hr@10")
    with pytest.raises(ConfigError, match="not tested on the same users"):
        seed_outcomes(results, ranks.drop(index=11), "hr@10")
    with pytest.raises(ConfigError, match="hr@10, ndcg@10"):
        seed_outcomes(results, ranks, "hr@5")
