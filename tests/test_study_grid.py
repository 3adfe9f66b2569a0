"""ncf_lib.study.grid: one run of the grid: towers, splits, refits, rows and the time estimate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ncf_lib.metrics import evaluate
from ncf_lib.study import baselines
from ncf_lib.study.grid import (
    BPR_MODELS,
    RunSpec,
    _refit,
    estimate_seconds,
    paper_grid,
    run_one,
)
from ncf_lib.train import train_model


def test_paper_tower_follows_the_factors():
    assert RunSpec("mlp", factors=8).model_config().layers == (64, 32, 16, 8)  # the original's
    assert RunSpec("mlp", factors=32).model_config().layers == (256, 128, 64, 32)
    assert RunSpec("mlp", factors=8, depth=1).model_config().layers == (16, 8)
    assert RunSpec("mlp", factors=8, depth=0).model_config().layers == (8,)


def test_paper_grid_has_every_study():
    specs = paper_grid(seeds=(0, 1, 2))
    studies = pd.Series([s.study for s in specs]).value_counts().to_dict()
    assert studies == {"main": 39, "factors": 24, "negatives": 6, "depth": 5}
    assert all(s.refit == (s.study == "main") for s in specs)
    bpr = [s for s in specs if s.model in BPR_MODELS]  # main table only, one negative each
    assert len(bpr) == 9 and all(s.study == "main" and s.num_ng == 1 for s in bpr)
    assert len({s.key for s in specs}) == len(specs)


def test_splits_share_test_items_and_candidates(splits):
    data, full = splits
    assert data.validation is not None and full.validation is None
    assert full.n_train == data.n_train + data.validation.users.size
    assert full.is_train_positive(data.validation.users, data.validation.items).all()


def test_refit_trains_on_validation_items_for_the_chosen_epochs(splits):
    data, full = splits
    spec = RunSpec("gmf", factors=8, epochs=3, refit=True)
    row, result, _ = run_one(spec, data, full)
    assert row["epoch"] == result.best_epoch >= 1
    assert row["selected_hr@10"] == result.best["test_hr"]

    def tested(split):  # a fresh GMF trained on ``split`` for the chosen number of epochs
        config = spec.train_config(epochs=row["epoch"], select_on="last", patience=None)
        model = train_model("gmf", split, config, spec.model_config()).model
        return evaluate(model.eval().score, full.test)

    on_full = tested(full)  # training + validation items
    assert (row["hr@10"], row["ndcg@10"]) == (on_full["hr"], on_full["ndcg"])
    without = tested(data)
    assert (row["hr@10"], row["ndcg@10"]) != (without["hr"], without["ndcg"])
    no_refit, _, _ = run_one(RunSpec("gmf", factors=8, epochs=3), data)
    assert no_refit["hr@10"] == no_refit["selected_hr@10"]
    with pytest.raises(ValueError, match="refit needs"):
        run_one(RunSpec("gmf", refit=True), data)


def test_refit_keeps_the_chosen_epoch_and_reports_the_peeking_numbers(splits):
    data, full = splits
    spec = RunSpec("gmf", factors=8, epochs=4, refit=True)
    kept, peek = _refit("gmf", spec, full, 2)
    # the weights after 2 of the 4 epochs are those of a run that stops after 2
    stopped = train_model(
        "gmf",
        full,
        spec.train_config(epochs=2, select_on="last", patience=None),
        spec.model_config(),
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


def test_itempop_row_matches_the_popularity_scorer(small_data, tmp_path):
    row, result, _ = run_one(RunSpec("itempop"), small_data)
    assert result is None and row["epoch"] == 0
    popularity = np.bincount(small_data.train_items, minlength=small_data.n_items)
    scores = popularity[small_data.test.candidates]  # computed here, not by the scorer
    ranks = (scores[:, 1:] >= scores[:, :1]).sum(axis=1)
    assert row["hr@10"] == pytest.approx((ranks < 10).mean())
    assert row["full_hr@10"] == row["full_recall@10"]
    assert all(row[f"hr@{k}"] <= row[f"hr@{k + 1}"] for k in range(1, 10))


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
    row, result, _ = run_one(RunSpec("itemknn"), small_data)
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


def test_rows_hold_corrected_estimates_nearer_the_full_ranking(small_data):
    row, _, _ = run_one(RunSpec("itempop"), small_data)
    assert abs(row["corrected_hr@10"] - row["full_hr@10"]) < abs(row["hr@10"] - row["full_hr@10"])
    assert abs(row["corrected_ndcg@10"] - row["full_ndcg@10"]) < abs(
        row["ndcg@10"] - row["full_ndcg@10"]
    )
