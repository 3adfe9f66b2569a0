"""ncf_lib.scale.hand_gradients: autograd's gradients bit for bit, and only for the exact
classes."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from ncf_lib import scale
from ncf_lib.models import GMF, MLP, MODELS, ModelConfig, NeuMF, build_model
from ncf_lib.scale import hand_gradients
from ncf_lib.train import TrainConfig, fit, seed_everything, train_model

QUICK = dict(progress=False, batch_size=256)


METRICS = ["loss", "val_hr", "val_ndcg", "test_hr", "test_ndcg"]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("layers", [(64, 32, 16, 8), (16,)])
def test_hand_gradients_are_autograds_bit_for_bit(name, layers):
    torch.manual_seed(0)
    model = build_model(name, 30, 40, ModelConfig(factor_num=8, layers=layers))
    with torch.no_grad():  # away from the initial point, so every gradient is non-trivial
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    users = torch.randint(0, 30, (64,))
    items = torch.randint(0, 40, (64,))
    users[:5] = 3  # repeated rows: their gradients must add up
    labels = torch.randint(0, 2, (64,)).float()
    loss = torch.nn.BCEWithLogitsLoss()(model(users, items), labels)
    loss.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    for p in model.parameters():  # stale values must be overwritten, not added to
        p.grad.fill_(7.0)
    assert hand_gradients.supports(model)
    assert torch.equal(hand_gradients.loss_and_grads_(model, users, items, labels), loss.detach())
    for n, p in model.named_parameters():
        assert torch.equal(p.grad, expected[n]), n


@pytest.mark.parametrize("name, l2", [("gmf", 0.0), ("mlp", 0.0), ("neumf", 0.0), ("mf", 1e-3)])
def test_training_with_the_engine_is_training_with_autograd(small_data, name, l2):
    config = TrainConfig(epochs=2, l2=l2, **QUICK)
    runs = [
        train_model(name, small_data, config, **scale.fit_options(config, hand_gradients=hand)[1])
        for hand in (True, False)
    ]
    pd.testing.assert_frame_equal(runs[0].history[METRICS], runs[1].history[METRICS])
    fast, reference = (run.model.state_dict() for run in runs)
    for key in reference:
        assert torch.equal(fast[key], reference[key]), key


class SumGMF(GMF):
    """What a reader writes in an exercise: GMF with the product replaced by a sum."""

    def forward(self, users, items):
        return self.output(self.user_embedding(users) + self.item_embedding(items)).squeeze(-1)


def _trained(model_class, data, hand: bool):
    seed_everything(0)
    model = model_class(data.n_users, data.n_items, ModelConfig(factor_num=8))
    config = TrainConfig(epochs=1, **QUICK)
    return fit(model, data, config, **scale.fit_options(config, hand_gradients=hand)[1]).model


def test_a_subclass_with_another_forward_trains_through_autograd(small_data):
    assert not hand_gradients.supports(SumGMF(3, 4))
    engine, autograd = (_trained(SumGMF, small_data, hand) for hand in (True, False))
    parent = _trained(GMF, small_data, True)
    for key, value in autograd.state_dict().items():
        assert torch.equal(engine.state_dict()[key], value), key  # its own gradients ...
    assert not torch.equal(
        engine.user_embedding.weight, parent.user_embedding.weight
    )  # ... not GMF's


def test_changed_models_are_not_supported():
    assert hand_gradients.supports(NeuMF(3, 4))
    assert not hand_gradients.supports(MLP(3, 4, ModelConfig(dropout=0.2)))
    assert not hand_gradients.supports(NeuMF(3, 4, ModelConfig(dropout=0.2)))
    replaced = GMF(3, 4)
    replaced.forward = lambda users, items: replaced.output(replaced.user_embedding(users))
    assert not hand_gradients.supports(replaced)
    deeper = MLP(3, 4)
    deeper.tower.append(torch.nn.Tanh())
    assert not hand_gradients.supports(deeper)
    assert not hand_gradients.supports(torch.nn.Linear(2, 1))
