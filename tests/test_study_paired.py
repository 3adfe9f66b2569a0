"""ncf_lib.study.paired: paired differences over users, their tests, Holm, the detectable
difference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ncf_lib.errors import ConfigError
from ncf_lib.study.paired import (
    detectable_difference,
    holm,
    paired_bootstrap,
    sign_test_p,
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
