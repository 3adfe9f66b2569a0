"""The experiment runner (resume, CSV schema, summary), MF and ItemPop."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from ncf_lib import experiments as E
from ncf_lib.models import MF, ModelConfig
from ncf_lib.train import TrainConfig, train_model

COLUMNS = {"key", "model", "factors", "seed", "epochs", "num_ng", "depth", "study", "refit",
           "params", "epoch", "val_hr@10", "selected_hr@10", "ndcg@10", "full_hr@10", "full_ndcg@10", "full_recall@10",
           "seconds", "peek_epoch", "peek_hr@10", "peek_ndcg@10", "hr@10_se", "ndcg@10_se",
           *[f"hr@{k}" for k in range(1, 11)]}


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
    penalty = mf.l2_penalty(users, items)
    expected = (mf.user_embedding(users).pow(2).sum() + mf.item_embedding(items).pow(2).sum()
                + 2 * 0.25 + 2 * 0.0625)
    assert torch.allclose(penalty, expected)


def test_l2_shrinks_mf_embeddings(small_data):
    plain = train_model("mf", small_data, TrainConfig(epochs=2, lr=0.01, progress=False))
    shrunk = train_model("mf", small_data, TrainConfig(epochs=2, lr=0.01, l2=0.1, progress=False))
    assert shrunk.model.user_embedding.weight.norm() < 0.8 * plain.model.user_embedding.weight.norm()


@pytest.mark.parametrize("name", ["mf", "neumf"])
def test_l2_gradient_equals_the_penalty_in_the_loss(name):
    from ncf_lib.models import build_model
    torch.manual_seed(0)
    model = build_model(name, 6, 9, ModelConfig(factor_num=4, layers=(8, 4)))
    users, items = torch.tensor([0, 5, 5, 2]), torch.tensor([8, 1, 1, 3])  # repeated pair
    labels, weight = torch.tensor([1.0, 0.0, 1.0, 0.0]), 0.3
    loss_fn = torch.nn.BCEWithLogitsLoss()
    (loss_fn(model(users, items), labels) + weight * model.l2_penalty(users, items)).backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    loss_fn(model(users, items), labels).backward()
    model.add_l2_grad_(users, items, weight)
    for p, want in zip(model.parameters(), expected):
        assert torch.allclose(p.grad, want, atol=1e-7)
    assert len(model.embedding_tables()) == 4  # MF: two tables and two biases


def test_paper_tower_follows_the_factors():
    assert E.RunSpec("mlp", factors=8).model_config().layers == (64, 32, 16, 8)  # the seed's
    assert E.RunSpec("mlp", factors=32).model_config().layers == (256, 128, 64, 32)
    assert E.RunSpec("mlp", factors=8, depth=1).model_config().layers == (16, 8)
    assert E.RunSpec("mlp", factors=8, depth=0).model_config().layers == (8,)


def test_paper_grid_has_every_study():
    specs = E.paper_grid(seeds=(0, 1, 2))
    studies = pd.Series([s.study for s in specs]).value_counts().to_dict()
    assert studies == {"main": 21, "factors": 24, "negatives": 6, "depth": 5}
    assert all(s.refit == (s.study == "main") for s in specs)
    assert len({s.key for s in specs}) == len(specs)


@pytest.fixture
def tiny_grid(monkeypatch):
    monkeypatch.setattr(E, "MF_L2_GRID", (0.0, 1e-3))
    return [E.RunSpec(m, factors=8, seed=0, epochs=2, refit=True) for m in E.MODEL_NAMES]


@pytest.fixture(scope="module")
def splits(small_ratings):
    return E.build_splits(small_ratings, seed=7)


def test_splits_share_test_items_and_candidates(splits):
    data, full = splits
    assert data.validation is not None and full.validation is None
    assert full.n_train == data.n_train + data.validation.users.size
    assert full.is_train_positive(data.validation.users, data.validation.items).all()


def test_refit_trains_on_validation_items_for_the_chosen_epochs(splits):
    data, full = splits
    row, result = E.run_one(E.RunSpec("gmf", factors=8, epochs=3, refit=True), data, full)
    assert row["epoch"] == result.best_epoch
    assert row["selected_hr@10"] == result.best["test_hr"]
    no_refit, _ = E.run_one(E.RunSpec("gmf", factors=8, epochs=3), data)
    assert no_refit["hr@10"] == no_refit["selected_hr@10"]
    with pytest.raises(ValueError, match="refit needs"):
        E.run_one(E.RunSpec("gmf", refit=True), data)


def test_refit_keeps_the_chosen_epoch_and_reports_the_peeking_numbers(splits):
    from ncf_lib.metrics import evaluate
    data, full = splits
    spec = E.RunSpec("gmf", factors=8, epochs=4, refit=True)
    kept, peek = E._refit("gmf", spec, full, 2)
    # the weights after 2 of the 4 epochs are those of a run that stops after 2
    stopped = train_model("gmf", full, spec.train_config(epochs=2, select_on="last"),
                          spec.model_config()).model
    for (name, a), b in zip(kept.state_dict().items(), stopped.state_dict().values()):
        assert torch.equal(a, b), name
    # the peeking numbers are the best test epoch of the full run
    history = train_model("gmf", full, spec.train_config(select_on="test", patience=None),
                          spec.model_config()).history
    best = history.loc[history["test_hr"].idxmax()]
    assert peek == {"epoch": best["epoch"], "hr@10": best["test_hr"],
                    "ndcg@10": best["test_ndcg"]}
    assert peek["hr@10"] >= evaluate(kept.eval().score, full.test)["hr"]
    with pytest.raises(ValueError, match="cannot keep epoch 5"):
        E._refit("gmf", spec, full, 5)


def test_run_grid_writes_rows_and_resumes(splits, tmp_path, tiny_grid):
    small_data, full = splits
    csv, hist = tmp_path / "results.csv", tmp_path / "history.csv"
    seen = []
    first = E.run_grid(tiny_grid[:3], small_data, csv, full=full, history_path=hist,
                       on_row=seen.append)
    assert len(first) == 3 and len(seen) == 3
    assert set(pd.read_csv(csv).columns) == COLUMNS
    assert pd.read_csv(hist)["key"].nunique() == 1  # itempop and itemknn have no history
    seen.clear()
    everything = E.run_grid(tiny_grid, small_data, csv, full=full, history_path=hist,
                            on_row=seen.append)
    assert [row["model"] for row in seen] == ["gmf", "mlp", "neumf", "neumf-pre"]  # new ones
    assert len(everything) == len(pd.read_csv(csv)) == 7
    pre = everything.set_index("model").loc["neumf-pre"]
    assert pre["params"].startswith("alpha=") and "sgd" in pre["params"]
    assert float(pre["params"].split()[0][6:]) in E.ALPHA_GRID
    mf = everything.set_index("model").loc["mf"]
    assert mf["params"] in ("l2=0", "l2=0.001")
    trained = everything[everything["model"].isin(["mf", "gmf", "mlp", "neumf", "neumf-pre"])]
    assert (trained["peek_hr@10"] >= trained["hr@10"] - 1e-12).all()  # peeking never loses
    assert everything.set_index("model").loc[["itempop", "itemknn"], "peek_hr@10"].isna().all()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".part"] == []


def test_itempop_row_matches_the_popularity_scorer(small_data, tmp_path):
    from ncf_lib.metrics import PopularityScorer, evaluate
    row, result = E.run_one(E.RunSpec("itempop"), small_data)
    assert result is None and row["epoch"] == 0
    assert row["hr@10"] == pytest.approx(evaluate(PopularityScorer.fit(small_data), small_data.test)["hr"])
    assert row["full_hr@10"] == row["full_recall@10"]
    assert all(row[f"hr@{k}"] <= row[f"hr@{k + 1}"] for k in range(1, 10))


def test_summary_means_and_markdown():
    rows = pd.DataFrame({"model": ["gmf", "gmf", "itempop"], "factors": [32, 32, 32],
                         "study": "main", "hr@10": [0.6, 0.7, 0.4], "ndcg@10": [0.3, 0.4, 0.2],
                         "full_hr@10": 0.1, "full_ndcg@10": 0.05})
    table = E.summary(rows)
    assert list(table["model"]) == ["itempop", "gmf"]
    assert table.loc[1, "hr@10 mean"] == pytest.approx(0.65)
    text = E.markdown_summary(table)
    assert "| gmf | 32 | 0.650 ± 0.071 |" in text and "| itempop | 32 | 0.400 |" in text
    epochs = E.markdown_summary(E.summary(rows.assign(peek_epoch=[3, 4, 0]), metrics=("peek_epoch",)))
    assert "| gmf | 32 | 3.5 ± 0.7 |" in epochs


def test_estimate_seconds_counts_stages(small_data):
    one = E.estimate_seconds([E.RunSpec("gmf", epochs=1)], small_data, 1.0)
    assert one == pytest.approx(small_data.n_train * 5 / 1e6)
    assert E.estimate_seconds([E.RunSpec("neumf-pre", epochs=1)], small_data, 1.0) == pytest.approx(3 * one)
    assert E.estimate_seconds([E.RunSpec("itempop")], small_data, 1.0) == 0
    # a refit trains the whole budget again on training + validation data
    assert E.estimate_seconds([E.RunSpec("gmf", epochs=1, refit=True)], small_data, 1.0) == pytest.approx(2 * one)


def test_itemknn_row_tunes_k_on_validation(small_data, monkeypatch):
    from ncf_lib.metrics import ItemKNNScorer, evaluate
    monkeypatch.setattr(E, "KNN_K_GRID", (5, 50))
    row, result = E.run_one(E.RunSpec("itemknn"), small_data)
    assert result is None and row["params"] in ("k=5", "k=50")
    k = int(row["params"][2:])
    val = {kk: evaluate(ItemKNNScorer.fit(small_data, kk), small_data.validation)["hr"]
           for kk in (5, 50)}
    assert val[k] == max(val.values())  # chosen on validation, never on test
    assert row["hr@10"] == pytest.approx(evaluate(ItemKNNScorer.fit(small_data, k), small_data.test)["hr"])


def test_pretraining_weight_is_chosen_on_validation(small_data):
    from ncf_lib.metrics import evaluate
    from ncf_lib.train import TrainConfig, pretrained_neumf, train_model
    config = TrainConfig(epochs=1, progress=False)
    spec = E.RunSpec("gmf", factors=8)
    gmf = train_model("gmf", small_data, config, spec.model_config()).model
    mlp = train_model("mlp", small_data, config, spec.model_config()).model
    alpha = E._best_alpha(gmf, mlp, small_data)
    hr = {a: evaluate(pretrained_neumf(gmf, mlp, a).eval().score, small_data.validation)["hr"]
          for a in E.ALPHA_GRID}
    assert alpha in E.ALPHA_GRID and hr[alpha] == max(hr.values())


def test_parallel_grid_matches_the_sequential_one(splits, tmp_path):
    data, full = splits
    specs = [E.RunSpec(m, factors=8, seed=0, epochs=2, refit=True)
             for m in ("itempop", "gmf", "mlp", "neumf-pre")]
    specs.append(E.RunSpec("gmf", factors=8, seed=1, epochs=2, refit=True))  # another group
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers, so that the sums happen in the same order
    try:
        one = E.run_grid(specs, data, tmp_path / "one.csv", full=full)
    finally:
        torch.set_num_threads(threads)
    seen = []
    two = E.run_grid(specs, data, tmp_path / "two.csv", full=full, jobs=2,
                     history_path=tmp_path / "h.csv", on_row=seen.append)
    assert sorted(row["key"] for row in seen) == sorted(s.key for s in specs)
    columns = ["key", "epoch", "hr@10", "ndcg@10", "full_hr@10"]
    pd.testing.assert_frame_equal(one[columns].sort_values("key", ignore_index=True),
                                  two[columns].sort_values("key", ignore_index=True))
    assert pd.read_csv(tmp_path / "h.csv")["key"].nunique() == 4  # all but itempop
    seen.clear()
    E.run_grid(specs, data, tmp_path / "two.csv", full=full, jobs=2, on_row=seen.append)
    assert seen == []  # resumed: nothing left to do
    with pytest.raises(ValueError, match="jobs"):
        E.run_grid(specs, data, tmp_path / "two.csv", jobs=0)
