"""ncf_lib.study.pairwise: the BPR loss and its gradient by hand, the triples' sampler, and a
BPR run through fit that resumes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import QUICK

from ncf_lib.checkpoints import load_checkpoint
from ncf_lib.models import ModelConfig, build_model
from ncf_lib.study.pairwise import PairSampler, bpr_train_epoch, pair_arrays
from ncf_lib.train import TrainConfig, fit


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_one_sgd_step_on_three_triples_is_the_hand_computed_bpr_gradient(l2):
    """MF's score is ``b + b_u + b_i + p_u . q_i``; for a triple, d = x_ui - x_uj and the loss
    -log sigmoid(d) has gradient -(1 - sigmoid(d)) * d(d)/d(theta): for p_u that is
    (q_i - q_j), for q_i p_u, for q_j -p_u, for b_i 1, b_j -1 (b and b_u cancel). Averaged
    over the batch, plus 2 * l2 / batch * row for each row a triple uses (the user once)."""
    torch.manual_seed(0)
    model = build_model("mf", 2, 4, ModelConfig(factor_num=3))
    with torch.no_grad():
        for table in (model.user_bias, model.item_bias):
            table.weight.normal_()
    users, pos, neg = np.array([0, 0, 1]), np.array([1, 2, 0]), np.array([3, 0, 2])
    P, Q = (
        model.user_embedding.weight.detach().numpy().copy(),
        model.item_embedding.weight.detach().numpy().copy(),
    )
    bu, bi = (
        model.user_bias.weight.detach().numpy()[:, 0].copy(),
        model.item_bias.weight.detach().numpy()[:, 0].copy(),
    )
    d = bi[pos] - bi[neg] + (P[users] * (Q[pos] - Q[neg])).sum(1)
    loss = np.mean(-np.log(_sigmoid(d)))
    g = -(1 - _sigmoid(d)) / 3  # dloss/dd for each triple
    grad_P, grad_Q, grad_bi = np.zeros_like(P), np.zeros_like(Q), np.zeros_like(bi)
    for k in range(3):
        u, i, j = users[k], pos[k], neg[k]
        grad_P[u] += g[k] * (Q[i] - Q[j]) + 2 * l2 / 3 * P[u]
        grad_Q[i] += g[k] * P[u] + 2 * l2 / 3 * Q[i]
        grad_Q[j] -= g[k] * P[u] - 2 * l2 / 3 * Q[j]
        grad_bi[i] += g[k] + 2 * l2 / 3 * bi[i]
        grad_bi[j] -= g[k] - 2 * l2 / 3 * bi[j]
    grad_bu = 2 * l2 / 3 * bu * np.bincount(users, minlength=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    batch = tuple(torch.from_numpy(a) for a in (users, pos, neg))
    got = bpr_train_epoch(model, optimizer, [batch], l2=l2)
    assert got == pytest.approx(loss, rel=1e-6)
    after = {
        "P": (model.user_embedding.weight, P, grad_P),
        "Q": (model.item_embedding.weight, Q, grad_Q),
        "b_u": (model.user_bias.weight[:, 0], bu, grad_bu),
        "b_i": (model.item_bias.weight[:, 0], bi, grad_bi),
    }
    for name, (weight, before, grad) in after.items():
        assert np.allclose(before - weight.detach().numpy(), grad, atol=1e-6), name


def test_triples_pair_each_positive_with_fresh_negatives(small_data):
    users, pos, neg = (t.numpy() for t in pair_arrays(small_data, 2, np.random.default_rng(0)))
    assert users.size == 2 * small_data.n_train
    assert small_data.is_train_positive(users, pos).all()
    assert not small_data.is_train_positive(users, neg).any()
    pairs = pd.Series(list(zip(users, pos))).value_counts()
    assert (pairs == 2).all() and len(pairs) == small_data.n_train  # each positive twice
    again = pair_arrays(small_data, 2, np.random.default_rng(1))[2].numpy()
    assert not np.array_equal(np.sort(again), np.sort(neg))  # another epoch, other negatives


def test_the_sampler_continues_its_stream_from_a_saved_state(small_data):
    one = PairSampler(small_data, 1, seed=3)
    one.epoch()
    state = one.state()
    expected = one.epoch()
    other = PairSampler(small_data, 1, seed=99)
    other.load_state(state)
    assert all(torch.equal(a, b) for a, b in zip(other.epoch(), expected))


@pytest.mark.numbers
def test_a_bpr_run_resumes_to_the_uninterrupted_numbers(small_data, tmp_path):
    options = {"make_sampler": PairSampler, "train_epoch": bpr_train_epoch}
    config = TrainConfig(epochs=3, num_ng=1, seed=5, lr=0.01, **QUICK)

    def fresh():
        torch.manual_seed(0)
        return build_model("gmf", small_data.n_users, small_data.n_items, ModelConfig(factor_num=8))

    whole = fit(fresh(), small_data, config, **options)
    path = tmp_path / "cut.pt"
    fit(fresh(), small_data, replace(config, epochs=2, checkpoint=str(path)), **options)
    resumed = fit(fresh(), small_data, config, resume=load_checkpoint(path), **options)
    columns = ["epoch", "loss", "val_hr", "val_ndcg", "test_hr", "test_ndcg"]
    pd.testing.assert_frame_equal(resumed.history[columns], whole.history[columns])
    with pytest.raises(ValueError, match="pairs sampler"):  # not with the pointwise sampler
        fit(fresh(), small_data, config, resume=load_checkpoint(path))
