"""Using a trained model: fold-in of new users, similar items, export, per-user ranks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ncf_lib.cli import main
from ncf_lib.dataset import EvalSet, build_dataset
from ncf_lib.errors import UnknownIdError
from ncf_lib.metrics import evaluate
from ncf_lib.models import GMF
from ncf_lib.ratings import Ratings, load_ratings
from ncf_lib.train import TrainConfig, train_model
from ncf_lib.use.foldin import FoldInConfig, fold_in, held_out_users_study
from ncf_lib.use.recommend import recommend
from ncf_lib.use.similar import similar_items
from ncf_lib.use.titles import match_title

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


def test_title_matching():
    titles = np.array(["Toy Story (1995)", "Heat (1995)", "Hamlet (1996)", "Hamlet (1996)"])
    ids = np.array([1, 6, 10, 11])
    assert match_title("  toy STORY   (1995) ", titles, ids) == 0
    with pytest.raises(UnknownIdError, match=r"closest: Toy Story \(1995\)"):
        match_title("Toy Stori (1995)", titles, ids)
    with pytest.raises(UnknownIdError, match=r"ambiguous.*id 10.*id 11"):
        match_title("hamlet (1996)", titles, ids)
    with pytest.raises(UnknownIdError, match="no titles"):
        match_title("Heat (1995)", None, ids)


def test_similar_items_finds_a_near_copy():
    model = GMF(3, 20)
    with torch.no_grad():
        model.item_embedding.weight[7] = model.item_embedding.weight[3] * 2 + 1e-4  # same direction
    items, cosines = similar_items(model, 3, k=5)
    assert items[0] == 7 and cosines[0] > 0.999 and 3 not in items
    assert np.all(np.diff(cosines) <= 0)


@pytest.fixture(scope="module")
def ml_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck")
    argv = ["train", "--dataset", "synthetic:120x200x3000", "--model", "neumf", "--epochs", "1",
            "--no-progress", "--no-log", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return next(out.glob("*.pt"))


def test_recommend_for_a_new_user_by_title(ml_checkpoint, capsys):
    capsys.readouterr()
    argv = ["recommend", str(ml_checkpoint), "--like", "synthetic movie 0001",
            "--like-ids", "2", "3", "-k", "5"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "a new user who likes Synthetic movie 0001; Synthetic movie 0002; Synthetic" in out
    shown = [line.split()[1] for line in out.splitlines()[2:]]
    assert len(shown) == 5 and not {"1", "2", "3"} & set(shown)
    assert main(argv) == 0 and capsys.readouterr().out == out  # same seed, same list
    assert main(["recommend", str(ml_checkpoint), "--like", "Synthetic movie 9999"]) == 2
    assert "closest" in capsys.readouterr().err


def test_similar_command(ml_checkpoint, capsys):
    capsys.readouterr()
    assert main(["similar", str(ml_checkpoint), "--item", "5", "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "Closest to Synthetic movie 0005 (id 5) in NeuMF's item space" in out
    from ncf_lib.checkpoints import load_checkpoint

    loaded = load_checkpoint(ml_checkpoint)
    item = int(np.flatnonzero(loaded.item_ids == 5)[0])
    items, cosines = similar_items(loaded.model, item, 3)
    printed = [line.split() for line in out.splitlines()[2:]]
    assert [int(row[1]) for row in printed] == loaded.item_ids[items].tolist()
    assert [row[-1] for row in printed] == [f"{c:.3f}" for c in cosines]


def test_export_round_trips(ml_checkpoint, tmp_path, capsys):
    from ncf_lib.checkpoints import load_checkpoint

    assert main(["export", str(ml_checkpoint), str(tmp_path / "emb")]) == 0
    model = load_checkpoint(ml_checkpoint).model
    saved = np.load(tmp_path / "emb" / "embeddings.npz")
    items = torch.cat([model.gmf_item_embedding.weight, model.mlp_item_embedding.weight], 1)
    np.testing.assert_array_equal(saved["item_vectors"], items.detach().numpy())
    width = model.gmf_user_embedding.embedding_dim + model.mlp_user_embedding.embedding_dim
    assert saved["user_vectors"].shape == (120, width) and saved["item_ids"][0] == 1
    table = pd.read_csv(tmp_path / "emb" / "items.csv")
    assert table.columns[:3].tolist() == ["item_id", "title", "e0"]
    np.testing.assert_allclose(table.iloc[:, 2:].to_numpy(), saved["item_vectors"], rtol=1e-7)
    assert (table["title"] == saved["titles"]).all()


def test_per_user_ranks_agree_with_the_metrics(ml_checkpoint, tmp_path, capsys):
    path = tmp_path / "per_user.csv"
    capsys.readouterr()
    assert main(["evaluate", str(ml_checkpoint), "--per-user", str(path)]) == 0
    out = capsys.readouterr().out
    model_test = next(line for line in out.splitlines() if line.startswith("model        test"))
    hr, full_hr = float(model_test.split()[2]), float(model_test.split()[4])
    ranks = pd.read_csv(path).query("split == 'test'")
    assert len(ranks) == 120
    assert round((ranks["rank"] < 10).mean(), 3) == hr
    assert round((ranks["full_rank"] < 10).mean(), 3) == full_hr
