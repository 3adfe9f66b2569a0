"""ncf_lib.use.index: MF's and GMF's scores as inner products, exact and approximate top-k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncf_lib.errors import ConfigError
from ncf_lib.models import ModelConfig, build_model
from ncf_lib.use.index import (
    ExactIndex,
    FaissIndex,
    build_index,
    dot_product_vectors,
    recall_at_k,
    top_k_excluding,
)


def _model(name: str):
    torch.manual_seed(0)
    model = build_model(name, 30, 50, ModelConfig(factor_num=6, layers=(12, 6)))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_()  # biases and h away from their zero or uniform starts
    return model.eval()


@pytest.mark.parametrize("name", ["mf", "gmf"])
def test_the_vectors_dot_products_are_the_models_logits(name):
    model = _model(name)
    users, items = dot_product_vectors(model)
    every = model.score(torch.arange(30), torch.arange(50).expand(30, -1)).detach().numpy()
    assert np.allclose(users @ items.T, every, atol=1e-5)
    scores, top = ExactIndex(items).search(users, 10)
    assert np.array_equal(top, np.argsort(-every, axis=1, kind="stable")[:, :10])
    assert np.allclose(scores, np.take_along_axis(every, top, axis=1), atol=1e-5)


@pytest.mark.parametrize("name", ["neumf", "mlp"])
def test_a_tower_has_no_inner_product_vectors(name):
    with pytest.raises(ConfigError, match="MLP tower, not a dot product"):
        dot_product_vectors(_model(name))


def test_the_history_is_left_out_of_the_top_k():
    users, items = dot_product_vectors(_model("mf"))
    best = ExactIndex(items).search(users[:1], 5)[1][0]
    found, _ = top_k_excluding(ExactIndex(items), users[0], 5, best[:3])
    assert found.size == 5 and not set(best[:3]) & set(found) and found[0] == best[3]


def test_faiss_flat_is_exact_and_hnsw_recalls_at_least_95_percent():
    """On vectors like trained embeddings (8 directions hold most of the variance)."""
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(8, 33))
    items, queries = (
        (rng.normal(size=(n, 8)) @ basis + 0.1 * rng.normal(size=(n, 33))).astype(np.float32)
        for n in (20_000, 200)
    )
    exact = ExactIndex(items).search(queries, 10)[1]
    assert recall_at_k(FaissIndex(items, "flat").search(queries, 10)[1], exact) == 1.0
    assert recall_at_k(build_index(items, "hnsw").search(queries, 10)[1], exact) >= 0.95
    with pytest.raises(ConfigError, match="exact, flat, hnsw"):
        build_index(items, "ivf")
