"""ncf_lib.scale.sampler: negatives drawn with torch follow the same rules as NumPy's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import METRICS, QUICK

from ncf_lib import scale
from ncf_lib.scale.sampler import TorchSampler
from ncf_lib.train import (
    TrainConfig,
    train_model,
)


@pytest.mark.parametrize("dense_mask", [True, False])
def test_device_sampler_follows_the_same_rules(small_data, monkeypatch, dense_mask):
    d = small_data
    if not dense_mask:  # force the sorted-keys path used for very large catalogues
        monkeypatch.setattr("ncf_lib.scale.sampler.DENSE_MASK_LIMIT", 0)
    sampler = TorchSampler(d, 4, seed=3, device="cpu")
    assert (sampler.mask is None) != dense_mask
    users, items, labels = sampler.epoch()
    assert users.shape == (d.n_train * 5,) and items.dtype == torch.int64
    assert labels.dtype == torch.float32 and int(labels.sum()) == d.n_train
    pos = labels == 1
    assert d.is_train_positive(users[pos].numpy(), items[pos].numpy()).all()
    assert not d.is_train_positive(users[~pos].numpy(), items[~pos].numpy()).any()
    # every positive appears once, every user keeps 4 negatives per positive
    keys = np.sort(users[pos].numpy() * d.n_items + items[pos].numpy())
    assert np.array_equal(keys, d.train_keys)
    assert np.array_equal(
        np.bincount(users[~pos].numpy(), minlength=d.n_users),
        4 * np.bincount(d.train_users, minlength=d.n_users),
    )
    again = TorchSampler(d, 4, seed=3, device="cpu").epoch()
    assert all(torch.equal(a, b) for a, b in zip((users, items, labels), again))
    assert not torch.equal(sampler.epoch()[1], items)  # fresh negatives each epoch


def test_the_torch_sampler_trains_on_the_cpu_too(small_data):
    """The sampler CUDA uses by default, asked for explicitly: reproducible, and its own
    random stream (so other numbers than NumPy's)."""
    config = TrainConfig(epochs=2, **QUICK)
    runs = [
        train_model("gmf", small_data, config, **scale.fit_options(config, sampler=s)[1])
        for s in ("torch", "torch", "numpy")
    ]
    pd.testing.assert_frame_equal(runs[0].history[METRICS], runs[1].history[METRICS])
    assert not runs[0].history[METRICS].equals(runs[2].history[METRICS])
    assert runs[0].best["test_hr"] > 0.2  # it learns (random: 0.1)
