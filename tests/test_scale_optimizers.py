"""ncf_lib.scale.optimizers: the row-sparse Adam, what it updates, its numbers and resuming it."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
import torch

from ncf_lib import scale
from ncf_lib.checkpoints import load_checkpoint
from ncf_lib.models import MODELS, ModelConfig, build_model
from ncf_lib.scale.optimizers import SparseRowAdam, make_optimizer
from ncf_lib.train import TrainConfig, train_epoch, train_model

QUICK = dict(progress=False, batch_size=256)


METRICS = ["loss", "val_hr", "val_ndcg", "test_hr", "test_ndcg"]


def _step(model, optimizer, users, items):
    labels = torch.ones(users.shape[0])
    return train_epoch(model, optimizer, [(users, items, labels)])


@pytest.mark.parametrize("name", list(MODELS))
def test_only_the_rows_a_batch_uses_change(name):
    torch.manual_seed(0)
    model = build_model(name, 30, 40, ModelConfig(factor_num=8, layers=(16, 8)))
    optimizer = make_optimizer(model, TrainConfig(optimizer="sparse-adam", lr=0.01))
    assert isinstance(optimizer, SparseRowAdam)
    _step(model, optimizer, torch.tensor([1, 2, 2]), torch.tensor([5, 6, 7]))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _step(model, optimizer, torch.tensor([3]), torch.tensor([9]))  # other rows this time
    for key, value in model.state_dict().items():
        if "embedding" in key or "bias" in key and value.dim() == 2:
            used = [3] if "user" in key else [9]
            unused = torch.ones(value.shape[0], dtype=torch.bool)
            unused[used] = False
            assert torch.equal(value[unused], before[key][unused]), key  # momentum: no move
            assert not torch.equal(value[used], before[key][used]), key


def test_dense_adam_moves_rows_a_batch_did_not_use():
    torch.manual_seed(0)
    model = build_model("gmf", 30, 40, ModelConfig(factor_num=8))
    optimizer = make_optimizer(model, TrainConfig(optimizer="adam", lr=0.01))
    _step(model, optimizer, torch.tensor([1]), torch.tensor([5]))
    before = model.user_embedding.weight[1].clone()
    _step(model, optimizer, torch.tensor([3]), torch.tensor([9]))
    assert not torch.equal(model.user_embedding.weight[1], before)  # what sparse-adam avoids


@pytest.mark.parametrize("name, l2", [("gmf", 0.0), ("neumf", 0.0), ("mf", 1e-3), ("mlp", 1e-3)])
def test_the_engine_trains_sparse_adam_as_autograd_does(small_data, name, l2):
    config = TrainConfig(epochs=2, l2=l2, optimizer="sparse-adam", **QUICK)
    runs = [
        train_model(name, small_data, config, **scale.fit_options(config, hand_gradients=hand)[1])
        for hand in (True, False)
    ]
    pd.testing.assert_frame_equal(runs[0].history[METRICS], runs[1].history[METRICS])
    for key, value in runs[1].model.state_dict().items():
        assert torch.equal(runs[0].model.state_dict()[key], value), key
    dense = train_model(name, small_data, TrainConfig(epochs=2, l2=l2, **QUICK))
    assert not dense.history["loss"].equals(runs[0].history["loss"])  # another optimiser


def test_sparse_adam_resumes_as_if_never_stopped(small_data, tmp_path):
    config = TrainConfig(optimizer="sparse-adam", select_on="last", **QUICK)
    options = scale.fit_options(config, hand_gradients=True)[1]
    run = lambda epochs, **kw: train_model(  # noqa: E731
        "neumf", small_data, replace(config, epochs=epochs, **kw), **options
    )
    whole = run(3)
    ckpt = tmp_path / "neumf.pt"
    run(2, checkpoint=str(ckpt))
    resumed = train_model(
        "neumf", small_data, replace(config, epochs=3), resume=load_checkpoint(ckpt), **options
    )
    pd.testing.assert_frame_equal(
        whole.history[METRICS], resumed.history[METRICS], check_exact=True
    )
