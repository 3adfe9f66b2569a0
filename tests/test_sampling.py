"""ncf_lib.sampling: training negatives (uniform over each user's other items, never a positive),
epochs and batches."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import ratings_frame, ratings_of

from ncf_lib.dataset import build_dataset
from ncf_lib.ratings import Ratings
from ncf_lib.sampling import NegativeSampler, batches, epoch_arrays, sample_negatives


def test_negatives_are_never_train_positives(small_data):
    d = small_data
    negatives = sample_negatives(d, 4, np.random.default_rng(0))
    assert negatives.shape == (d.n_train * 4,)
    assert not d.is_train_positive(np.repeat(d.train_users, 4), negatives).any()


def test_epoch_arrays_resampled_and_reproducible(small_data):
    d = small_data
    u1, i1, l1 = epoch_arrays(d, 4, np.random.default_rng(3))
    u2, i2, l2 = epoch_arrays(d, 4, np.random.default_rng(3))
    assert torch.equal(u1, u2) and torch.equal(i1, i2) and torch.equal(l1, l2)
    assert u1.shape == (d.n_train * 5,) and u1.dtype == torch.int64 and l1.dtype == torch.float32
    assert int(l1.sum()) == d.n_train
    pos = l1 == 1
    assert d.is_train_positive(u1[pos].numpy(), i1[pos].numpy()).all()
    assert not d.is_train_positive(u1[~pos].numpy(), i1[~pos].numpy()).any()
    rng = np.random.default_rng(3)
    first, second = epoch_arrays(d, 4, rng), epoch_arrays(d, 4, rng)
    assert not torch.equal(first[1], second[1])  # fresh negatives each epoch


def test_batches_cover_everything_in_order():
    a, b = torch.arange(10), torch.arange(10) * 2
    out = list(batches(a, b, batch_size=4))
    assert [len(x) for x, _ in out] == [4, 4, 2]
    assert torch.equal(torch.cat([y for _, y in out]), b)


def test_a_user_who_trained_on_every_item_has_no_negatives(small_data):
    # a split of one's own may train a user on every item (leave-one-out never does); the
    # message names that user's original id
    users = np.concatenate([np.full(small_data.n_items, 5), small_data.train_users])
    items = np.concatenate([np.arange(small_data.n_items), small_data.train_items])
    keys = np.unique(users * small_data.n_items + items)
    users, items = np.divmod(keys, small_data.n_items)
    data = replace(small_data, train_users=users, train_items=items, train_keys=keys)
    name = small_data.user_ids[5]
    with pytest.raises(ValueError, match=f"^user {name} has interacted with every item; no neg"):
        sample_negatives(data, 1, np.random.default_rng(0))


def test_negatives_are_uniform_over_each_users_other_items():
    """Chi-square over 20 epochs of one user's negatives: every item it did not train on is
    drawn equally often (false-alarm rate 1e-6 at the threshold below, fixed seed)."""
    rows = [(1, i, 4, i) for i in (3, 7, 11)] + [(2, i, 4, i) for i in range(18)]
    rows += [(3, 18, 4, 1), (3, 19, 4, 2)]
    data = build_dataset(Ratings(ratings_frame(rows), None, "x"), num_ng_test=1, validation=False)
    rng = np.random.default_rng(0)
    draws = np.concatenate([sample_negatives(data, 50, rng) for _ in range(20)])
    mine = draws[np.tile(np.repeat(data.train_users, 50) == 0, 20)]  # user 1's draws
    allowed = np.setdiff1d(np.arange(data.n_items), data.train_items[data.train_users == 0])
    counts = np.bincount(mine, minlength=data.n_items)
    assert counts[np.setdiff1d(np.arange(data.n_items), allowed)].sum() == 0
    expected = mine.size / allowed.size
    chi2 = ((counts[allowed] - expected) ** 2 / expected).sum()
    assert chi2 < 60.0  # 17 degrees of freedom: P(chi2 > 60) < 1e-6


def test_the_sampler_runs_on_the_cpu_by_default(small_data):
    users, items, labels = NegativeSampler(small_data, 2, 0).epoch()
    assert users.device.type == items.device.type == labels.device.type == "cpu"


@pytest.mark.numbers
def test_negatives_are_uniform_over_the_items_left_item_0_too():
    """User 1 trains on items 3..9 of 1..10 (10 is held out): its negatives are items 1, 2 and
    10, a third each, redraws included (14,000 draws: a share's standard error is 0.004)."""
    from ncf_lib.sampling import sample_negatives

    rows = [(1, i, 4, i) for i in range(3, 11)] + [(u, i, 4, i) for u in (2, 3) for i in (1, 2)]
    data = build_dataset(ratings_of(rows), num_ng_test=1, validation=False)
    negatives = sample_negatives(data, 2000, np.random.default_rng(0))
    mine = negatives[np.repeat(data.train_users, 2000) == data.user_index("1")]
    shares = np.bincount(mine, minlength=data.n_items) / mine.size
    assert np.allclose(shares[[0, 1, 9]], 1 / 3, atol=0.03) and shares[2:9].sum() == 0
