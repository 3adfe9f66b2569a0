"""ncf_lib.models: GMF, MLP, NeuMF and MF, their shapes, initialisation, configs and pre-trained
NeuMF."""

from __future__ import annotations

import inspect

import pytest
import torch

from ncf_lib.models import GMF, MF, MLP, MODELS, ModelConfig, NeuMF, build_model

N_USERS, N_ITEMS = 30, 50


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_and_score_shapes(name):
    torch.manual_seed(0)
    model = build_model(name, N_USERS, N_ITEMS).eval()
    users, items = torch.randint(0, N_USERS, (7,)), torch.randint(0, N_ITEMS, (7,))
    logits = model(users, items)
    assert logits.shape == (7,) and logits.dtype == torch.float32
    cands = torch.randint(0, N_ITEMS, (7, 11))
    scores = model.score(users, cands)
    assert scores.shape == (7, 11)
    assert torch.allclose(scores[:, 3], model(users, cands[:, 3]), atol=1e-6)


def test_embedding_sizes_follow_the_config():
    cfg = ModelConfig(factor_num=8, layers=(32, 16, 8))
    assert GMF(N_USERS, N_ITEMS, cfg).user_embedding.weight.shape == (N_USERS, 8)
    mlp = MLP(N_USERS, N_ITEMS, cfg)
    assert mlp.item_embedding.weight.shape == (N_ITEMS, 16)  # layers[0] / 2, not factor_num
    neumf = NeuMF(N_USERS, N_ITEMS, cfg)
    assert neumf.output.in_features == 8 + 8
    assert neumf.gmf_user_embedding.weight.shape == (N_USERS, 8)
    assert neumf.mlp_user_embedding.weight.shape == (N_USERS, 16)
    assert MLP(N_USERS, N_ITEMS, ModelConfig(layers=(16,))).output.in_features == 16  # depth 0


def test_initialisation_is_small_normal():
    torch.manual_seed(0)
    weight = GMF(2000, 10).user_embedding.weight.detach()
    assert abs(float(weight.std()) - 0.01) < 0.001


@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf"])
def test_prediction_layer_is_lecun_uniform_as_the_papers_code(name):
    """``Dense(1, init='lecun_uniform')``: U(-b, b) with b = sqrt(3 / fan_in), so std b / sqrt(3);
    Xavier uniform (the seed's) would have std sqrt(2 / (fan_in + 1)), 1.4 times larger."""
    torch.manual_seed(0)
    cfg = ModelConfig(factor_num=2048, layers=(4096, 2048))  # wide, for a tight std estimate
    layer = build_model(name, N_USERS, N_ITEMS, cfg).output
    fan_in = layer.in_features
    bound = (3 / fan_in) ** 0.5
    weight = layer.weight.detach()
    assert float(weight.abs().max()) <= bound
    assert abs(float(weight.std()) - bound / 3**0.5) < 0.05 * bound / 3**0.5
    assert not layer.bias.detach().any()
    hidden = build_model("mlp", N_USERS, N_ITEMS, cfg).tower[0].weight.detach()  # Glorot
    assert abs(float(hidden.std()) - (2 / (4096 + 2048)) ** 0.5) < 0.001


def test_dropout_is_applied_in_training_only():
    torch.manual_seed(0)
    mlp = MLP(N_USERS, N_ITEMS, ModelConfig(dropout=0.5))
    with torch.no_grad():
        mlp.user_embedding.weight.normal_()
        mlp.item_embedding.weight.normal_()
    assert any(isinstance(m, torch.nn.Dropout) for m in mlp.tower)
    users, items = torch.zeros(64, dtype=torch.long), torch.zeros(64, dtype=torch.long)
    mlp.train()
    assert mlp(users, items).std() > 1e-3  # same input, different dropout masks
    mlp.eval()
    out = mlp(users, items)
    assert torch.allclose(out, out[:1].expand_as(out), atol=1e-6)
    assert not any(isinstance(m, torch.nn.Dropout) for m in MLP(N_USERS, N_ITEMS).tower)


@pytest.mark.parametrize(
    "bad, message",
    [(dict(layers=(63, 8)), r"first is even.*\[63, 8\]"), (dict(layers=()), "layers must be"),
     (dict(factor_num=0), "factor_num must be positive, got 0"),
     (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0")],
)  # fmt: skip
def test_bad_config_is_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**bad)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'svd'"):
        build_model("svd", 3, 3)


def test_mf_is_a_biased_dot_product():
    torch.manual_seed(0)
    mf = MF(5, 7, ModelConfig(factor_num=4))
    with torch.no_grad():
        mf.user_bias.weight.fill_(0.5)
        mf.item_bias.weight.fill_(-0.25)
        mf.bias.fill_(1.0)
    users, items = torch.tensor([0, 4]), torch.tensor([6, 1])
    dot = (mf.user_embedding(users) * mf.item_embedding(items)).sum(-1)
    assert torch.allclose(mf(users, items), 1.25 + dot)


@pytest.mark.parametrize("name", list(MODELS))
def test_each_model_is_short_enough_to_read_in_one_cell(name):
    """Each class (``__init__`` and ``forward``) fits one notebook cell."""
    lines = inspect.getsource(MODELS[name]).splitlines()
    code = [line for line in lines if line.strip() and not line.strip().startswith("#")]
    assert len(code) <= 30, len(code)  # with its docstring
    forward = inspect.getsource(MODELS[name].forward).splitlines()
    assert len(forward) <= 5
