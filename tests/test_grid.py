"""The grid of runs: specs, one run (selection, refit, peeking), the runner, the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ncf_lib.metrics import evaluate
from ncf_lib.models import GMF, MLP, ModelConfig
from ncf_lib.pretraining import ALPHA_GRID, choose_alpha
from ncf_lib.study import baselines
from ncf_lib.study.grid import (
    CLOSED_FORM,
    MODEL_NAMES,
    RunSpec,
    _refit,
    build_splits,
    estimate_seconds,
    paper_grid,
    run_one,
)
from ncf_lib.study.report import markdown_summary, order_disagreements, summary
from ncf_lib.study.runner import run_grid
from ncf_lib.train import train_model

COLUMNS = {
    "key",
    "model",
    "factors",
    "seed",
    "epochs",
    "num_ng",
    "depth",
    "study",
    "refit",
    "params",
    "epoch",
    "val_hr@10",
    "selected_hr@10",
    "ndcg@10",
    "full_hr@10",
    "full_ndcg@10",
    "full_recall@10",
    "seconds",
    "peek_epoch",
    "peek_hr@10",
    "peek_ndcg@10",
    "hr@10_se",
    "ndcg@10_se",
    "corrected_hr@10",
    "corrected_ndcg@10",
    *[f"hr@{k}" for k in range(1, 11)],
}


def test_paper_tower_follows_the_factors():
    assert RunSpec("mlp", factors=8).model_config().layers == (64, 32, 16, 8)  # the original's
    assert RunSpec("mlp", factors=32).model_config().layers == (256, 128, 64, 32)
    assert RunSpec("mlp", factors=8, depth=1).model_config().layers == (16, 8)
    assert RunSpec("mlp", factors=8, depth=0).model_config().layers == (8,)


def test_paper_grid_has_every_study():
    specs = paper_grid(seeds=(0, 1, 2))
    studies = pd.Series([s.study for s in specs]).value_counts().to_dict()
    assert studies == {"main": 30, "factors": 24, "negatives": 6, "depth": 5}
    assert all(s.refit == (s.study == "main") for s in specs)
    assert len({s.key for s in specs}) == len(specs)


@pytest.fixture
def tiny_grid(monkeypatch):
    monkeypatch.setattr(baselines, "MF_L2_GRID", (0.0, 1e-3))
    ials_grid = {"factors": (4,), "l2": (1.0,), "alpha": (2.0, 5.0)}
    monkeypatch.setattr(baselines, "IALS_GRID", ials_grid)
    return [RunSpec(m, factors=8, seed=0, epochs=2, refit=True) for m in MODEL_NAMES]


@pytest.fixture(scope="module")
def splits(small_ratings):
    return build_splits(small_ratings, seed=7)


def test_splits_share_test_items_and_candidates(splits):
    data, full = splits
    assert data.validation is not None and full.validation is None
    assert full.n_train == data.n_train + data.validation.users.size
    assert full.is_train_positive(data.validation.users, data.validation.items).all()


def test_refit_trains_on_validation_items_for_the_chosen_epochs(splits):
    data, full = splits
    spec = RunSpec("gmf", factors=8, epochs=3, refit=True)
    row, result = run_one(spec, data, full)
    assert row["epoch"] == result.best_epoch >= 1
    assert row["selected_hr@10"] == result.best["test_hr"]

    def tested(split):  # a fresh GMF trained on ``split`` for the chosen number of epochs
        config = spec.train_config(epochs=row["epoch"], select_on="last")
        model = train_model("gmf", split, config, spec.model_config()).model
        return evaluate(model.eval().score, full.test)

    on_full = tested(full)  # training + validation items
    assert (row["hr@10"], row["ndcg@10"]) == (on_full["hr"], on_full["ndcg"])
    without = tested(data)
    assert (row["hr@10"], row["ndcg@10"]) != (without["hr"], without["ndcg"])
    no_refit, _ = run_one(RunSpec("gmf", factors=8, epochs=3), data)
    assert no_refit["hr@10"] == no_refit["selected_hr@10"]
    with pytest.raises(ValueError, match="refit needs"):
        run_one(RunSpec("gmf", refit=True), data)


def test_refit_keeps_the_chosen_epoch_and_reports_the_peeking_numbers(splits):
    data, full = splits
    spec = RunSpec("gmf", factors=8, epochs=4, refit=True)
    kept, peek = _refit("gmf", spec, full, 2)
    # the weights after 2 of the 4 epochs are those of a run that stops after 2
    stopped = train_model(
        "gmf", full, spec.train_config(epochs=2, select_on="last"), spec.model_config()
    ).model
    for (name, a), b in zip(kept.state_dict().items(), stopped.state_dict().values()):
        assert torch.equal(a, b), name
    # the peeking numbers are the best test epoch of the full run
    history = train_model(
        "gmf", full, spec.train_config(select_on="test", patience=None), spec.model_config()
    ).history
    best = history.loc[history["test_hr"].idxmax()]
    assert peek == {"epoch": best["epoch"], "hr@10": best["test_hr"], "ndcg@10": best["test_ndcg"]}
    assert peek["hr@10"] >= evaluate(kept.eval().score, full.test)["hr"]
    with pytest.raises(ValueError, match="cannot keep epoch 5"):
        _refit("gmf", spec, full, 5)


def test_run_grid_writes_rows_and_resumes(splits, tmp_path, tiny_grid):
    small_data, full = splits
    csv, hist = tmp_path / "results.csv", tmp_path / "history.csv"
    seen = []
    first_models = ("itempop", "itemknn", "mf")
    first = run_grid(
        [spec for spec in tiny_grid if spec.model in first_models],
        small_data,
        csv,
        full=full,
        history_path=hist,
        on_row=seen.append,
    )
    assert len(first) == 3 and len(seen) == 3
    assert set(pd.read_csv(csv).columns) == COLUMNS
    assert pd.read_csv(hist)["key"].nunique() == 1  # only MF trains epochs
    seen.clear()
    everything = run_grid(
        tiny_grid, small_data, csv, full=full, history_path=hist, on_row=seen.append
    )
    assert [row["model"] for row in seen] == [m for m in MODEL_NAMES if m not in first_models]
    assert len(everything) == len(pd.read_csv(csv)) == len(MODEL_NAMES)
    pre = everything.set_index("model").loc["neumf-pre"]
    assert pre["params"].startswith("alpha=") and "sgd" in pre["params"]
    assert float(pre["params"].split()[0][6:]) in ALPHA_GRID
    mf = everything.set_index("model").loc["mf"]
    assert mf["params"] in ("l2=0", "l2=0.001")
    trained = everything[everything["model"].isin(["mf", "gmf", "mlp", "neumf", "neumf-pre"])]
    assert (trained["peek_hr@10"] >= trained["hr@10"] - 1e-12).all()  # peeking never loses
    assert everything.set_index("model").loc[list(CLOSED_FORM), "peek_hr@10"].isna().all()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".part"] == []


def test_itempop_row_matches_the_popularity_scorer(small_data, tmp_path):
    row, result = run_one(RunSpec("itempop"), small_data)
    assert result is None and row["epoch"] == 0
    popularity = np.bincount(small_data.train_items, minlength=small_data.n_items)
    scores = popularity[small_data.test.candidates]  # computed here, not by the scorer
    ranks = (scores[:, 1:] >= scores[:, :1]).sum(axis=1)
    assert row["hr@10"] == pytest.approx((ranks < 10).mean())
    assert row["full_hr@10"] == row["full_recall@10"]
    assert all(row[f"hr@{k}"] <= row[f"hr@{k + 1}"] for k in range(1, 10))


def test_summary_means_and_markdown():
    rows = pd.DataFrame(
        {
            "model": ["gmf", "gmf", "itempop"],
            "factors": [32, 32, 32],
            "study": "main",
            "hr@10": [0.6, 0.7, 0.4],
            "ndcg@10": [0.3, 0.4, 0.2],
            "full_hr@10": 0.1,
            "full_ndcg@10": 0.05,
        }
    )
    table = summary(rows)
    assert list(table["model"]) == ["itempop", "gmf"]
    assert table.loc[1, "hr@10 mean"] == pytest.approx(0.65)
    text = markdown_summary(table)
    assert "| gmf | 32 | 0.650 ± 0.071 |" in text and "| itempop | 32 | 0.400 |" in text
    epochs = markdown_summary(summary(rows.assign(peek_epoch=[3, 4, 0]), metrics=("peek_epoch",)))
    assert "| gmf | 32 | 3.5 ± 0.7 |" in epochs


def test_estimate_seconds_counts_stages(small_data):
    one = estimate_seconds([RunSpec("gmf", epochs=1)], small_data, 1.0)
    assert one == pytest.approx(small_data.n_train * 5 / 1e6)
    assert estimate_seconds([RunSpec("neumf-pre", epochs=1)], small_data, 1.0) == pytest.approx(
        3 * one
    )
    assert estimate_seconds([RunSpec("itempop")], small_data, 1.0) == 0
    # a refit trains the whole budget again on training + validation data
    assert estimate_seconds(
        [RunSpec("gmf", epochs=1, refit=True)], small_data, 1.0
    ) == pytest.approx(2 * one)


def test_itemknn_row_tunes_k_on_validation(small_data, monkeypatch):
    from ncf_lib.study.baselines import ItemKNNScorer

    monkeypatch.setattr(baselines, "KNN_K_GRID", (5, 50))
    row, result = run_one(RunSpec("itemknn"), small_data)
    assert result is None and row["params"] in ("k=5", "k=50")
    k = int(row["params"][2:])
    val = {
        kk: evaluate(ItemKNNScorer.fit(small_data, kk), small_data.validation)["hr"]
        for kk in (5, 50)
    }
    assert val[k] == max(val.values())  # chosen on validation, never on test
    assert row["hr@10"] == pytest.approx(
        evaluate(ItemKNNScorer.fit(small_data, k), small_data.test)["hr"]
    )


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


def test_parallel_grid_matches_the_sequential_one(splits, tmp_path):
    data, full = splits
    specs = [
        RunSpec(m, factors=8, seed=0, epochs=2, refit=True)
        for m in ("itempop", "gmf", "mlp", "neumf-pre")
    ]
    specs.append(RunSpec("gmf", factors=8, seed=1, epochs=2, refit=True))  # another group
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers, so that the sums happen in the same order
    try:
        one = run_grid(specs, data, tmp_path / "one.csv", full=full)
    finally:
        torch.set_num_threads(threads)
    seen = []
    two = run_grid(
        specs,
        data,
        tmp_path / "two.csv",
        full=full,
        jobs=2,
        history_path=tmp_path / "h.csv",
        on_row=seen.append,
    )
    assert sorted(row["key"] for row in seen) == sorted(s.key for s in specs)
    columns = ["key", "epoch", "hr@10", "ndcg@10", "full_hr@10"]
    pd.testing.assert_frame_equal(
        one[columns].sort_values("key", ignore_index=True),
        two[columns].sort_values("key", ignore_index=True),
    )
    assert pd.read_csv(tmp_path / "h.csv")["key"].nunique() == 4  # all but itempop
    seen.clear()
    run_grid(specs, data, tmp_path / "two.csv", full=full, jobs=2, on_row=seen.append)
    assert seen == []  # resumed: nothing left to do
    with pytest.raises(ValueError, match="jobs"):
        run_grid(specs, data, tmp_path / "two.csv", jobs=0)


def test_order_disagreements_count_pairs_ordered_otherwise_than_the_full_ranking():
    rows = pd.DataFrame(
        {
            "model": ["a", "b", "c", "a"],
            "full_hr@10": [0.30, 0.20, 0.10, 0.30],
            "hr@10": [0.50, 0.60, 0.70, 0.50],  # c > b > a: every pair reversed
            "corrected_hr@10": [0.31, 0.12, 0.14, 0.29],  # a > c > b: b and c swapped
        }
    )
    assert order_disagreements(rows) == {"sampled": 3, "corrected": 1, "pairs": 3}


def test_rows_hold_corrected_estimates_nearer_the_full_ranking(small_data):
    row, _ = run_one(RunSpec("itempop"), small_data)
    assert abs(row["corrected_hr@10"] - row["full_hr@10"]) < abs(row["hr@10"] - row["full_hr@10"])
    assert abs(row["corrected_ndcg@10"] - row["full_ndcg@10"]) < abs(
        row["ndcg@10"] - row["full_ndcg@10"]
    )
