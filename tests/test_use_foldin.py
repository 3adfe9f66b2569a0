"""ncf_lib.use.foldin: a new user's vector learnt from liked items, seeded, compared with
training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ncf_lib.dataset import EvalSet, build_dataset
from ncf_lib.metrics import evaluate
from ncf_lib.ratings import Ratings, load_ratings
from ncf_lib.train import TrainConfig, train_model
from ncf_lib.use.foldin import FoldInConfig, fold_in, held_out_users_study
from ncf_lib.use.recommend import recommend

QUICK = {"progress": False, "seed": 0}


@pytest.fixture(scope="module")
def two_groups():
    """120 users in two groups; each rates 12 of its own group's 40 items."""
    rng = np.random.default_rng(0)
    rows = [
        (u + 1, i + 1, 4.0, 1000 * u + k)
        for u in range(120)
        for k, i in enumerate(rng.choice(40, 12, replace=False) + 40 * (u % 2))
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return build_dataset(Ratings(frame.astype({"rating": "float32"}), None, "two"), num_ng_test=20)


@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf", "mf"])
def test_fold_in_of_a_trained_user_recovers_its_ranking(two_groups, name):
    """Measured (10 epochs, first 20 test users): top-10 overlap of folded-in and trained
    rankings 0.89 (GMF), 0.99 (MLP), 0.95 (NeuMF), 0.89 (MF); the bar is 0.75."""
    data = two_groups
    model = train_model(name, data, TrainConfig(epochs=10, **QUICK)).model
    users = data.test.users[:20]
    liked = [data.train_items[data.train_users == u] for u in users]
    folded = fold_in(model, liked)
    overlap = []
    for j, user in enumerate(users):
        mine, _ = recommend(folded, j, 10, exclude=liked[j])
        trained, _ = recommend(model, int(user), 10, exclude=liked[j])
        assert not set(mine) & set(liked[j])  # liked items never come back
        overlap.append(len(set(mine) & set(trained)) / 10)
    assert np.mean(overlap) >= 0.75
    for key, value in model.state_dict().items():  # the item side is the trained one
        if "user" not in key:
            assert torch.equal(value, folded.state_dict()[key]), key


def test_fold_in_is_seeded(two_groups):
    model = train_model("gmf", two_groups, TrainConfig(epochs=2, **QUICK)).model
    liked = [np.array([1, 2, 3])]
    a, b = fold_in(model, liked, FoldInConfig(seed=3)), fold_in(model, liked, FoldInConfig(seed=3))
    c = fold_in(model, liked, FoldInConfig(seed=4))
    assert torch.equal(a.user_embedding.weight, b.user_embedding.weight)
    assert not torch.equal(a.user_embedding.weight, c.user_embedding.weight)


def test_held_out_users_study_compares_both_ways():
    data = build_dataset(load_ratings("synthetic:200x300x6000"), seed=42)
    table = held_out_users_study(data, "gmf", TrainConfig(epochs=2, **QUICK))
    assert list(table.index) == ["trained normally", "folded in"]
    assert table.index.name == "gmf, 20 held-out users"
    rng = np.random.default_rng(FoldInConfig().seed)  # the study's held-out users
    held = np.sort(rng.choice(data.test.users, size=20, replace=False))
    rows = np.isin(data.test.users, held)
    test = EvalSet(data.test.users[rows], data.test.candidates[rows])
    normal = train_model("gmf", data, TrainConfig(epochs=2, **QUICK)).model
    want = evaluate(normal.score, test, 10)
    assert table.loc["trained normally", "HR@10"] == pytest.approx(want["hr"])
    assert table.loc["trained normally", "NDCG@10"] == pytest.approx(want["ndcg"])
    assert (table.loc["folded in"] != table.loc["trained normally"]).any()  # another model
