"""ncf_lib.pretraining: NeuMF from its pre-trained parts, alpha chosen on validation."""

from __future__ import annotations

import pytest
import torch
from conftest import QUICK

from ncf_lib.metrics import evaluate
from ncf_lib.models import GMF, MLP, ModelConfig
from ncf_lib.pretraining import ALPHA_GRID, choose_alpha, pretrained_neumf
from ncf_lib.train import TrainConfig, fit, train_model

N_USERS, N_ITEMS = 30, 50


def _indicator_parts(data):
    """A GMF whose logit is 1 exactly for each user's validation item (0 elsewhere), and an
    MLP whose logit is -1 there: one-hot users, items multi-hot over the users who hold them
    out, and for the MLP a hidden unit per user, ``relu(p_u[k] + q_i[k] - 1)``."""
    n, m = data.n_users, data.n_items
    held = torch.zeros(m, n)
    held[torch.from_numpy(data.validation.items), torch.from_numpy(data.validation.users)] = 1
    gmf = GMF(n, m, ModelConfig(factor_num=n))
    mlp = MLP(n, m, ModelConfig(factor_num=n, layers=(2 * n, n)))
    with torch.no_grad():
        for model in (gmf, mlp):
            model.user_embedding.weight.copy_(torch.eye(n))
            model.item_embedding.weight.copy_(held)
            model.output.bias.zero_()
        gmf.output.weight.fill_(1.0)
        mlp.tower[0].weight.copy_(torch.cat([torch.eye(n), torch.eye(n)], dim=1))
        mlp.tower[0].bias.fill_(-1.0)
        mlp.output.weight.fill_(-1.0)
    return gmf, mlp


def test_pretraining_weight_is_chosen_on_validation(small_data):
    """GMF ranks every validation item first and MLP last: only alpha = 0.7 (GMF's weight)
    puts them ahead (0.7 - 0.3 > 0); 0.5 ties them with every negative (ties count
    against), 0.3 puts them last. Swapping the roles makes 0.3 the right answer."""
    gmf, mlp = _indicator_parts(small_data)
    assert evaluate(gmf.eval().score, small_data.validation)["hr"] == 1.0
    assert choose_alpha(gmf, mlp, small_data, grid=ALPHA_GRID) == 0.7
    with torch.no_grad():
        gmf.output.weight.neg_()
        mlp.output.weight.neg_()
    assert choose_alpha(gmf, mlp, small_data, grid=ALPHA_GRID) == 0.3


def test_pretraining_starts_where_its_parts_are(small_data):
    cfg = TrainConfig(epochs=2, lr=0.01, **QUICK)
    gmf = train_model("gmf", small_data, cfg).model
    mlp = train_model("mlp", small_data, cfg).model
    neumf = pretrained_neumf(gmf, mlp)
    users, items = torch.arange(20), torch.randint(0, small_data.n_items, (20, 5))
    with torch.no_grad():
        expected = 0.5 * gmf.score(users, items) + 0.5 * mlp.score(users, items)
        assert torch.allclose(neumf.eval().score(users, items), expected, atol=1e-5)
    config = TrainConfig(epochs=1, optimizer="sgd", lr=0.05, evaluate_start=True, **QUICK)
    before = evaluate(neumf.eval().score, small_data.test)
    result = fit(neumf, small_data, config)
    assert result.history.loc[0, "test_hr"] == before["hr"]  # fine-tuning starts from the parts
    with pytest.raises(ValueError, match="needs a GMF and an MLP"):
        pretrained_neumf(mlp, gmf)


@pytest.mark.parametrize("alpha", [0.5, 0.2])
def test_pretrained_neumf_is_the_alpha_weighted_combination(alpha):
    torch.manual_seed(1)
    gmf, mlp = GMF(N_USERS, N_ITEMS).eval(), MLP(N_USERS, N_ITEMS).eval()
    with torch.no_grad():  # make the output layers non-trivial, as after training
        for m in (gmf, mlp):
            m.output.bias.fill_(float(torch.randn(())))
    neumf = pretrained_neumf(gmf, mlp, alpha).eval()
    users, items = torch.randint(0, N_USERS, (40,)), torch.randint(0, N_ITEMS, (40,))
    expected = alpha * gmf(users, items) + (1 - alpha) * mlp(users, items)
    assert torch.allclose(neumf(users, items), expected, atol=1e-6)
    assert torch.equal(neumf.gmf_user_embedding.weight, gmf.user_embedding.weight)
    assert torch.equal(neumf.mlp_item_embedding.weight, mlp.item_embedding.weight)
    assert torch.equal(neumf.tower[0].weight, mlp.tower[0].weight)
    neumf.gmf_user_embedding.weight.data.add_(1.0)  # a copy, not shared storage
    assert not torch.equal(neumf.gmf_user_embedding.weight, gmf.user_embedding.weight)


def test_pretrained_needs_matching_sizes():
    with pytest.raises(ValueError, match="different users"):
        pretrained_neumf(GMF(3, 4), MLP(3, 5))
