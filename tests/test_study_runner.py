"""ncf_lib.study.runner: a whole grid written row by row, resumed, run in parallel and stopped
safely."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SAMPLE, one_line_error

from ncf_lib.pretraining import ALPHA_GRID
from ncf_lib.ratings import load_ratings
from ncf_lib.study import baselines, grid
from ncf_lib.study.grid import (
    BPR_MODELS,
    CLOSED_FORM,
    MODEL_NAMES,
    RunSpec,
    build_splits,
)
from ncf_lib.study.runner import RANK_COLUMNS, finished_rows, run_grid

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


@pytest.fixture
def tiny_grid(monkeypatch):
    monkeypatch.setattr(baselines, "MF_L2_GRID", (0.0, 1e-3))
    ials_grid = {"factors": (4,), "l2": (1.0,), "alpha": (2.0, 5.0)}
    monkeypatch.setattr(baselines, "IALS_GRID", ials_grid)
    monkeypatch.setattr(grid, "BPR_LR_GRID", (0.001, 0.01))
    return [RunSpec(m, factors=8, seed=0, epochs=2, refit=True) for m in MODEL_NAMES]


def test_run_grid_writes_rows_and_resumes(splits, tmp_path, tiny_grid):
    small_data, full = splits
    csv, hist, ranks = (tmp_path / name for name in ("results.csv", "history.csv", "r.csv.gz"))
    files = {"full": full, "history_path": hist, "ranks_path": ranks}
    seen = []
    first_models = ("itempop", "itemknn", "mf")
    first = run_grid(
        [spec for spec in tiny_grid if spec.model in first_models],
        small_data,
        csv,
        **files,
        on_row=seen.append,
    )
    assert len(first) == 3 and len(seen) == 3
    assert set(pd.read_csv(csv).columns) == COLUMNS
    assert pd.read_csv(hist)["key"].nunique() == 1  # only MF trains epochs
    seen.clear()
    everything = run_grid(tiny_grid, small_data, csv, **files, on_row=seen.append)
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
    bpr = everything.set_index("model").loc[list(BPR_MODELS), "params"]
    assert bpr.str.fullmatch(r"lr=0\.0?01( l2=0(\.001)?)?").all() and "l2" in bpr["mf-bpr"]
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".part"] == []
    users = pd.read_csv(ranks)  # every run's every test user, ranks as its row counts them
    assert (
        tuple(users.columns) == RANK_COLUMNS
        and len(users) == len(MODEL_NAMES) * full.test.users.size
    )
    for key, row in everything.set_index("key").iterrows():
        mine = users[users["key"] == key]
        assert sorted(mine["user_id"]) == sorted(full.user_ids[full.test.users])
        assert np.isclose((mine["rank"] < 10).mean(), row["hr@10"])
        assert np.isclose((mine["full_rank"] < 10).mean(), row["full_hr@10"])


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


@pytest.mark.slow
def test_two_concurrent_reproduce_runs_share_one_results_file(tmp_path):
    out = tmp_path / "results"
    argv = [sys.executable, "-m", "ncf_lib", "reproduce", "--dataset", "synthetic:80x200x1600",
            "--seeds", "0", "--epochs", "1", "--factors", "8", "--only-main",
            "--out", str(out)]  # fmt: skip
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path) for _ in range(2)]  # fmt: skip
    trained = 0
    for proc in procs:
        stdout, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        trained += sum(line.startswith("main ") for line in stdout.splitlines())
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == len(MODEL_NAMES) and rows["key"].is_unique  # the main table, once
    assert trained == len(MODEL_NAMES)  # and each trained by one of the two processes only
    history = pd.read_csv(out / "history.csv")
    assert history.groupby("key")["epoch"].apply(lambda e: e.is_unique).all()


def test_a_row_cut_mid_line_is_re_run_not_kept(grid_csv, tmp_path):
    source, specs, data, full = grid_csv
    text = source.read_text()
    path = tmp_path / "results.csv"
    path.write_text(text[: len(text) - 40])  # the last row loses its last fields
    kept, notes = finished_rows(path)
    assert len(kept) == 2 and len(notes) == 1 and "line 4" in notes[0] and "incomplete" in notes[0]
    final = run_grid(specs, data, path, full=full)
    assert len(final) == 3 and final["hr@10"].notna().all()
    pd.testing.assert_frame_equal(
        pd.read_csv(path).drop(columns="seconds"), pd.read_csv(source).drop(columns="seconds")
    )


def test_a_damaged_key_or_repeated_row_is_reported(grid_csv, tmp_path):
    source = grid_csv[0]
    lines = source.read_text().splitlines()
    damaged = lines[3].replace("|s2|", "|s", 1)  # cut inside the key, rest of the row intact
    path = tmp_path / "results.csv"
    path.write_text("\n".join([*lines[:3], damaged, lines[1]]) + "\n")
    kept, notes = finished_rows(path)
    assert len(kept) == 2
    assert any("line 4" in n and "damaged key" in n for n in notes)
    assert any("line 5" in n and "repeats" in n for n in notes)


def test_unreadable_results_file_names_itself(tmp_path, capsys):
    out = tmp_path / "res"
    out.mkdir()
    (out / "results.csv").write_bytes(b'key,"model\n\x00\x01')
    one_line_error(
        ["reproduce", "--dataset", "synthetic:100x300x2500", "--out", str(out)],
        capsys,
        str(out / "results.csv"),
    )


def test_a_finished_row_without_its_history_is_trained_again(tmp_path):
    """A stop between the two files' writes: results.csv holds the row, history.csv does not
    hold its curve. The next run trains it again and writes both; closed forms need none."""
    data, full = build_splits(load_ratings(SAMPLE), seed=42)
    csv, hist = tmp_path / "results.csv", tmp_path / "history.csv"
    specs = [RunSpec("itempop", factors=8, epochs=1), RunSpec("gmf", factors=8, epochs=1)]
    run_grid(specs, data, csv, full=full, history_path=hist)
    curves = pd.read_csv(hist)
    curves[curves["key"] != specs[1].key].to_csv(hist, index=False)  # its curve lost
    seen = []
    run_grid(specs, data, csv, full=full, history_path=hist, on_row=seen.append)
    assert [row["model"] for row in seen] == ["gmf"]
    assert specs[1].key in set(pd.read_csv(hist)["key"])
    assert len(pd.read_csv(csv)) == 2


@pytest.mark.slow
def test_sigterm_stops_reproduce_and_its_workers_and_keeps_finished_rows(tmp_path):
    """``reproduce --jobs 2`` stopped by SIGTERM once a row is written: it exits with 130 and
    the one-line message, no worker is left training, and the finished rows are kept."""
    out = tmp_path / "results"
    argv = [sys.executable, "-m", "ncf_lib", "reproduce", "--dataset", "synthetic:80x200x1600",
            "--seeds", "0", "1", "--epochs", "3", "--factors", "8", "--only-main", "--jobs", "2",
            "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, start_new_session=True)  # fmt: skip
    for line in proc.stdout:
        if line.startswith("main "):  # a finished row: the workers are training the next ones
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted"
    with pytest.raises(ProcessLookupError):  # nothing of the run's session is still alive
        for _ in range(50):
            os.killpg(proc.pid, 0)
            time.sleep(0.1)  # a terminated worker may take a moment to be reaped
    kept = pd.read_csv(out / "results.csv")
    assert len(kept) >= 1 and np.isfinite(kept["hr@10"]).all()
