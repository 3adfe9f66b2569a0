"""Nothing silently wrong, nothing lost: bad ids, interruptions, concurrent runs, damaged
results, mismatched artefacts, meaningless settings, and errors a user can act on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ncf_lib.checkpoints import load_checkpoint, weights_digest
from ncf_lib.cli import main
from ncf_lib.files import exclusive_lock
from ncf_lib.ratings import load_ratings, read_ratings
from ncf_lib.study.grid import MODEL_NAMES, RunSpec, build_splits
from ncf_lib.study.runner import finished_rows, run_grid

SAMPLE = "synthetic:120x200x3000"
QUIET = ["--no-progress", "--no-log"]


def _train_argv(tmp_path, *extra):
    return ["train", "--dataset", SAMPLE, "--epochs", "1", "--model", "gmf", *QUIET,
            "--out", str(tmp_path / "ck"), *extra]  # fmt: skip


def _one_line_error(argv, capsys, *needles):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return captured.out


def _ratings_file(path: Path, rows, header: str | None = None) -> Path:
    lines = ([header] if header else []) + [",".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _dense_rows(users, items_per_user=6, n_items=40, user_ids=None):
    """Every user rates ``items_per_user`` items at distinct times."""
    rows = []
    for u in range(users):
        uid = user_ids[u] if user_ids is not None else u + 1
        for j in range(items_per_user):
            rows.append((uid, (u * 7 + j * 3) % n_items + 1, 4, 1000 * u + j))
    return rows


# ---- ids ------------------------------------------------------------------------------


def test_ids_beyond_int32_stay_distinct(tmp_path, capsys):
    big = [2**31 + 7 * u for u in range(60)]  # int32 would merge these into one id
    path = _ratings_file(tmp_path / "r.csv", _dense_rows(60, user_ids=big))
    frame = read_ratings(path)
    assert frame["user_id"].dtype == np.int64 and frame["user_id"].nunique() == 60
    assert main(["info", "--dataset", str(path), "--num-ng-test", "5"]) == 0
    assert "users: 60" in capsys.readouterr().out


def test_fractional_ids_are_an_error_naming_the_line(tmp_path, capsys):
    rows = _dense_rows(5)
    rows[3] = (1.7, 2, 4, 5)
    path = _ratings_file(tmp_path / "r.csv", rows)
    _one_line_error(["info", "--dataset", str(path)], capsys, "line 4", "'1.7'", "not an integer")


def test_string_ids_with_and_without_header_recognised_by_content(tmp_path):
    rows = [(f"U{u}x", f"B{i:04d}", 5, 978300000 + k) for k, (u, i) in enumerate(
        [(1, 1), (1, 2), (1, 3), (2, 1), (2, 4), (2, 5)])]  # fmt: skip
    plain = read_ratings(_ratings_file(tmp_path / "a.csv", rows))
    headed = read_ratings(_ratings_file(tmp_path / "b.csv", rows, "user,item,rating,ts"))
    assert len(plain) == 6 and len(headed) == 6  # no data row taken for a header
    assert plain["user_id"].tolist()[0] == "U1x" and plain["item_id"].tolist()[-1] == "B0005"
    pd.testing.assert_frame_equal(plain, headed)


def test_recommend_prints_the_original_string_ids(tmp_path, capsys):
    names = [f"user-{u:03d}" for u in range(40)]
    rows = [(u, f"movie-{i:02d}", r, t) for u, i, r, t in _dense_rows(40, user_ids=names)]
    path = _ratings_file(tmp_path / "r.csv", rows, "userId,movieId,rating,timestamp")
    out = tmp_path / "ck"
    args = ["train", "--dataset", str(path), "--epochs", "1", "--model", "gmf", *QUIET,
            "--num-ng-test", "20", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    ckpt = next(out.glob("*.pt"))
    assert load_checkpoint(ckpt).user_ids[0] == "user-000"
    capsys.readouterr()
    assert main(["recommend", str(ckpt), "--user", "user-003", "-k", "3"]) == 0
    shown = capsys.readouterr().out
    assert "user user-003" in shown and shown.count("movie-") == 3
    _one_line_error(["recommend", str(ckpt), "--user", "nobody"], capsys, "--user nobody")


# ---- checkpoints, interruptions, resume ----------------------------------------------

TRAIN_LONG = [sys.executable, "-m", "ncf_lib", "train", "--dataset", "synthetic:300x400x12000",
              "--model", "neumf", "--epochs", "4", "--seed", "5", *QUIET]  # fmt: skip


def _epoch_lines(text: str) -> list[str]:
    """Epoch lines without their timings."""
    return [line.split("   train")[0] for line in text.splitlines() if line.startswith("epoch ")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_keeps_its_checkpoint_and_resumes_to_the_same_numbers(tmp_path, sig):
    proc = subprocess.Popen(
        [*TRAIN_LONG, "--out", str(tmp_path / "cut")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("epoch 001"):
            proc.send_signal(sig)
            break
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.count("\n") == 1 and "can be resumed with" in err and "Traceback" not in err
    ckpt = next((tmp_path / "cut").glob("*.pt"))
    done = load_checkpoint(ckpt).training["epoch"]
    assert 1 <= done < 4  # the signal came during a later epoch: what finished is kept

    resumed = subprocess.run(
        [sys.executable, "-m", "ncf_lib", "train", "--resume", str(ckpt), *QUIET],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    )  # fmt: skip
    whole = subprocess.run(
        [*TRAIN_LONG, "--out", str(tmp_path / "whole")],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert f"resuming after epoch {done}" in resumed.stdout
    assert _epoch_lines(resumed.stdout) == _epoch_lines(whole.stdout)
    assert resumed.stdout.splitlines()[-1] == whole.stdout.splitlines()[-1]  # "Best epoch ..."
    a, b = load_checkpoint(ckpt), load_checkpoint(next((tmp_path / "whole").glob("*.pt")))
    assert a.epoch == b.epoch
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key


def test_checkpoint_is_written_after_every_epoch(tmp_path):
    from ncf_lib.train import TrainConfig, train_model

    data = build_splits(load_ratings(SAMPLE), seed=42)[0]
    seen = []
    path = tmp_path / "run.pt"

    def on_epoch(row):
        seen.append((row["epoch"], load_checkpoint(path).training["epoch"]))

    config = TrainConfig(epochs=3, progress=False, checkpoint=str(path))
    train_model("gmf", data, config, on_epoch=on_epoch)
    assert seen == [(1, 1), (2, 2), (3, 3)]


def test_output_folder_is_checked_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = _one_line_error(
        _train_argv(tmp_path)[:-1] + [str(blocker / "ck")], capsys, "--out", "cannot write"
    )
    assert "epoch" not in out  # nothing trained
    argv = _train_argv(tmp_path) + ["--log-dir", str(blocker / "runs")]
    argv.remove("--no-log")
    _one_line_error(argv, capsys, "--log-dir", "cannot write")


# ---- concurrency ----------------------------------------------------------------------


def test_a_second_run_on_the_same_checkpoint_stops_with_a_message(tmp_path, capsys):
    ckpt = tmp_path / "ck" / f"{SAMPLE.replace(':', '_')}-gmf.pt"
    ckpt.parent.mkdir()
    with exclusive_lock(ckpt.with_name(f".{ckpt.name}.lock")):  # as another process would
        _one_line_error(_train_argv(tmp_path), capsys, str(ckpt), "another training run")
    assert main(_train_argv(tmp_path)) == 0  # once it is free


def test_tensorboard_folders_are_unique_per_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("time.strftime", lambda *_: "20261201-120000")  # the same second
    argv = [a for a in _train_argv(tmp_path) if a != "--no-log"] + ["--log-dir", str(tmp_path)]
    assert main(argv) == 0 and main(argv) == 0
    runs = [p for p in tmp_path.iterdir() if p.name.startswith("synthetic")]
    assert len(runs) == 2


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


# ---- damaged results -------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid_csv(tmp_path_factory):
    data, full = build_splits(load_ratings("synthetic:100x300x2500"), seed=42)
    path = tmp_path_factory.mktemp("grid") / "results.csv"
    specs = [RunSpec("itempop", 8, s, 1, refit=True) for s in (0, 1, 2)]
    run_grid(specs, data, path, full=full)
    return path, specs, data, full


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
    _one_line_error(
        ["reproduce", "--dataset", "synthetic:100x300x2500", "--out", str(out)],
        capsys,
        str(out / "results.csv"),
    )


# ---- consistency ----------------------------------------------------------------------


def test_pretrain_parts_and_evaluate_refuse_other_data(tmp_path, capsys):
    assert main(_train_argv(tmp_path)) == 0
    gmf = next((tmp_path / "ck").glob("*.pt"))
    for other in ("synthetic:150x200x3000", "synthetic:100x200x3000"):  # larger and smaller
        _one_line_error(
            [
                "train",
                "--dataset",
                other,
                "--model",
                "neumf",
                "--pretrain",
                "--gmf",
                str(gmf),
                "--epochs",
                "1",
                *QUIET,
                "--out",
                str(tmp_path / "x"),
            ],  # fmt: skip
            capsys,
            str(gmf),
            "trained on other data",
        )
    # the same users and items, other interactions: the id ranges match, the split does not
    _one_line_error(
        ["evaluate", str(gmf), "--dataset", "synthetic:120x200x3100"],
        capsys,
        "split",
        "trained on other data",
    )
    capsys.readouterr()
    assert main(["evaluate", str(gmf)]) == 0  # its own data


# ---- meaningless settings ----------------------------------------------------------------


def test_settings_that_make_metrics_meaningless_are_refused(tmp_path, capsys):
    _one_line_error(_train_argv(tmp_path, "--num-ng-test", "0"), capsys, "--num-ng-test")
    _one_line_error(_train_argv(tmp_path, "--top-k", "100"), capsys, "--top-k", "100 candidates")
    assert main(_train_argv(tmp_path)) == 0
    ckpt = str(next((tmp_path / "ck").glob("*.pt")))
    _one_line_error(["evaluate", ckpt, "--top-k", "0"], capsys, "--top-k")
    _one_line_error(["recommend", ckpt, "--user", "1", "-k", "0"], capsys, "-k must be")
    _one_line_error(["recommend", ckpt, "--user", "1", "-k", "-3"], capsys, "-k must be")


def test_a_nan_checkpoint_is_an_error_not_zero(tmp_path, capsys):
    assert main(_train_argv(tmp_path)) == 0
    path = next((tmp_path / "ck").glob("*.pt"))
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = {
        k: torch.full_like(v, torch.nan) for k, v in payload["state_dict"].items()
    }
    payload["weights_sha256"] = weights_digest(payload["state_dict"])  # as a diverged run saves
    torch.save(payload, path)
    _one_line_error(["evaluate", str(path)], capsys, "NaN or infinity")
    _one_line_error(["recommend", str(path), "--user", "1"], capsys, "NaN or infinity")


# ---- errors a user can fix: one line naming what is wrong ------------------------------------


def test_bad_values_are_one_line_naming_the_flag(tmp_path, capsys):
    for flag, value in [("--lr", "inf"), ("--l2", "inf"), ("--seed", "-1"),
                        ("--num-ng-test", "-1")]:  # fmt: skip
        _one_line_error(_train_argv(tmp_path, flag, value), capsys, flag)
    _one_line_error(["info", "--dataset", "synthetic:0x0x0"], capsys, "synthetic")


def test_divergence_through_l2_names_the_l2_weight(tmp_path, capsys):
    _one_line_error(
        _train_argv(tmp_path, "--l2", "1e30", "--optimizer", "sgd", "--lr", "10"),
        capsys,
        "diverged",
        "l2=1e+30",
    )


def test_data_with_nothing_to_evaluate_is_one_line(tmp_path, capsys):
    two = _ratings_file(tmp_path / "two.csv", _dense_rows(10, items_per_user=2))
    _one_line_error(["train", "--dataset", str(two), *QUIET, "--num-ng-test", "5"], capsys,
                    "no user has 3 ratings", "--select-on test")  # fmt: skip
    one = _ratings_file(tmp_path / "one.csv", [(u, 1, 4, t) for u in range(5) for t in (1, 2)])
    _one_line_error(["info", "--dataset", str(one), "--num-ng-test", "1"], capsys, str(one))


def test_damaged_checkpoints_are_one_line(tmp_path, capsys):
    assert main(_train_argv(tmp_path)) == 0
    path = next((tmp_path / "ck").glob("*.pt"))
    payload = torch.load(path, weights_only=True)
    shrunk = dict(payload, state_dict={**payload["state_dict"]})
    key = next(iter(shrunk["state_dict"]))
    shrunk["state_dict"][key] = shrunk["state_dict"][key][:3]
    shrunk["weights_sha256"] = weights_digest(shrunk["state_dict"])
    torch.save(shrunk, tmp_path / "shape.pt")
    _one_line_error(["evaluate", str(tmp_path / "shape.pt")], capsys, "shape.pt", "do not fit")
    torch.save({k: v for k, v in payload.items() if k != "model_config"}, tmp_path / "key.pt")
    _one_line_error(["evaluate", str(tmp_path / "key.pt")], capsys, "key.pt", "model_config")


def test_overwritten_weight_bytes_are_refused(tmp_path, capsys):
    """A checkpoint whose tensor bytes were changed in place (the file still loads) is
    refused by the SHA-256 of its weights, naming the file; so is a changed resume state."""
    assert main(_train_argv(tmp_path)) == 0
    path = next((tmp_path / "ck").glob("*.pt"))
    payload = torch.load(path, weights_only=True)
    for part in ("state_dict", "training"):
        changed = torch.load(path, weights_only=True)
        weights = changed["state_dict"] if part == "state_dict" else changed["training"]["model"]
        name = next(iter(weights))
        weights[name] = weights[name].clone()
        weights[name].view(-1)[0] += 1.0
        torch.save(changed, tmp_path / f"{part}.pt")
        _one_line_error(["evaluate", str(tmp_path / f"{part}.pt")], capsys, f"{part}.pt",
                        "do not match the SHA-256")  # fmt: skip
    torch.save(payload, tmp_path / "same.pt")  # untouched: loads
    assert load_checkpoint(tmp_path / "same.pt").epoch == 1


def test_unwritable_data_dir_keeps_the_place_by_hand_hint(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _one_line_error(
        ["info", "--dataset", "ml-100k", "--data-dir", str(blocker / "data")],
        capsys,
        "Cannot write to the data folder",
        "To place it by hand",
    )


def test_a_corrupt_zip_in_the_data_folder_is_named(tmp_path, capsys, monkeypatch):
    from ncf_lib import download

    monkeypatch.setitem(
        download.DATASETS,
        "ml-100k",
        download.DATASETS["ml-100k"].__class__(
            **{**vars(download.DATASETS["ml-100k"]), "url": "http://127.0.0.1:9/ml-100k.zip"}
        ),
    )
    with zipfile.ZipFile(tmp_path / "ml-100k.zip", "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t2\t3\t4\n")  # not the published file
    _one_line_error(
        ["info", "--dataset", "ml-100k", "--data-dir", str(tmp_path)],
        capsys,
        f"The file already at {tmp_path / 'ml-100k.zip'} failed its checksum",
    )


# ---- permissions -------------------------------------------------------------------------


def test_written_files_follow_the_umask(tmp_path, grid_csv):
    old = os.umask(0o027)
    try:
        assert main(_train_argv(tmp_path)) == 0
        ckpt = next((tmp_path / "ck").glob("*.pt"))
        _, specs, data, full = grid_csv
        run_grid(specs[:1], data, tmp_path / "res" / "results.csv", full=full)
    finally:
        os.umask(old)
    assert ckpt.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "res" / "results.csv").stat().st_mode & 0o777 == 0o640


# ---- round 3: outputs never replace inputs or runs ------------------------------------------


def test_an_output_never_replaces_an_input_and_a_folder_is_not_a_file(tmp_path, capsys):
    ratings = _ratings_file(tmp_path / "r.csv", _dense_rows(30, items_per_user=10))
    assert main(["train", "--dataset", str(ratings), "--epochs", "1", "--model", "gmf", *QUIET,
                 "--num-ng-test", "19", "--out", str(tmp_path / "ck")]) == 0  # fmt: skip
    ckpt = next((tmp_path / "ck").glob("*.pt"))
    before = {p: p.read_bytes() for p in (ckpt, ratings)}
    for target in (ckpt, ratings):
        _one_line_error(["evaluate", str(ckpt), "--per-user", str(target)], capsys,
                        "--per-user", "is an input")  # fmt: skip
    assert {p: p.read_bytes() for p in before} == before
    (tmp_path / "dir").mkdir()
    for folder in (str(tmp_path / "dir"), str(tmp_path / "new") + "/"):
        out = _one_line_error(["evaluate", str(ckpt), "--per-user", folder], capsys, "is a folder")
        assert "model" not in out  # refused before any metric was computed
    assert not (tmp_path / "new").exists()


def test_train_refuses_to_replace_an_unfinished_run_unless_told(tmp_path, capsys):
    from ncf_lib.dataset import build_dataset
    from ncf_lib.train import TrainConfig, train_model

    path = tmp_path / "ck" / "synthetic_120x200x3000-gmf.pt"
    data = build_dataset(load_ratings(SAMPLE), seed=42)

    def stop(row):
        raise KeyboardInterrupt  # after epoch 1 of 3, as Ctrl-C would

    with pytest.raises(KeyboardInterrupt):
        train_model("gmf", data, TrainConfig(epochs=3, progress=False, checkpoint=str(path)),
                    on_epoch=stop)  # fmt: skip
    kept = path.read_bytes()
    _one_line_error(_train_argv(tmp_path), capsys, str(path), "unfinished run (after epoch 1 of 3)",
                    "--resume", "--overwrite")  # fmt: skip
    assert path.read_bytes() == kept
    assert main(_train_argv(tmp_path, "--overwrite")) == 0
    assert load_checkpoint(path).training["next_epoch"] == 2  # the new, finished 1-epoch run
    assert main(_train_argv(tmp_path)) == 0  # a finished run may be replaced


def test_two_ratings_files_of_one_name_get_two_checkpoints(tmp_path, capsys):
    for folder in ("A", "B"):
        (tmp_path / folder).mkdir()
        _ratings_file(tmp_path / folder / "ratings.csv", _dense_rows(30, items_per_user=10))
        assert main(["train", "--dataset", str(tmp_path / folder / "ratings.csv"), "--epochs",
                     "1", "--model", "gmf", *QUIET, "--num-ng-test", "19",
                     "--out", str(tmp_path / "ck")]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "ck").glob("*.pt")) == [
        "A-ratings.csv-gmf.pt", "B-ratings.csv-gmf.pt"
    ]  # fmt: skip


# ---- round 3: what is read is what the file says --------------------------------------------


def test_timestamps_keep_their_order_exactly(tmp_path):
    rows = [(1, 1, 4, "100"), (1, 2, 4, "1e30"), (1, 3, 4, "200"),  # 1e30 is the latest
            (2, 1, 4, "1000000000.9"), (2, 2, 4, "1000000000.1"), (2, 3, 4, "5")]  # fmt: skip
    frame = read_ratings(_ratings_file(tmp_path / "t.csv", rows))
    assert frame["timestamp"].dtype == np.float64
    latest = frame.loc[frame.groupby("user_id")["timestamp"].idxmax(), "item_id"].tolist()
    assert latest == [2, 1]  # user 2: .9 is after .1, whatever the file order
    whole = read_ratings(_ratings_file(tmp_path / "w.csv", [(1, 1, 4, 5), (1, 2, 4, 7)]))
    assert whole["timestamp"].dtype == np.int64


@pytest.mark.parametrize("bad", ["inf", "nan", "-inf", "1e400"])
def test_a_non_finite_timestamp_names_its_line(tmp_path, capsys, bad):
    path = _ratings_file(tmp_path / "t.csv", [(1, 1, 4, 10), (1, 2, 4, bad), (1, 3, 4, 30)])
    _one_line_error(["info", "--dataset", str(path)], capsys, str(path), "line 2", "finite")


def test_a_folder_with_two_ratings_files_says_so(tmp_path, capsys):
    _ratings_file(tmp_path / "ratings.csv", _dense_rows(5))
    (tmp_path / "ratings.dat").write_text("1::1::4::1\n")
    _one_line_error(["info", "--dataset", str(tmp_path)], capsys, "ratings.csv", "ratings.dat",
                    "several ratings files")  # fmt: skip


def test_movies_csv_in_windows_1252_and_with_named_ids(tmp_path):
    folder = tmp_path / "ml"
    folder.mkdir()
    _ratings_file(folder / "ratings.csv", [(1, "B0001", 4, 1), (1, "B0002", 4, 2)],
                  header="userId,movieId,rating,timestamp")  # fmt: skip
    (folder / "movies.csv").write_bytes(
        "movieId,title,genres\nB0001,Caf\xe9 (1999),Drama\nB0002,Na\xefve (2001),Comedy\n"
        .encode("cp1252")
    )  # fmt: skip
    ratings = load_ratings(folder)
    assert ratings.movies["title"].tolist() == ["Café (1999)", "Naïve (2001)"]
    assert ratings.movies["item_id"].tolist() == ["B0001", "B0002"]


def test_one_named_id_among_integers_keeps_the_titles(tmp_path):
    from ncf_lib.dataset import build_dataset

    folder = tmp_path / "ml"
    folder.mkdir()
    rows = [(u, i, 4, 10 * u + i) for u in range(1, 31) for i in range(u % 5 + 1, u % 5 + 12)]
    rows += [(1, "x9", 4, 99)]
    _ratings_file(folder / "ratings.csv", rows, header="userId,movieId,rating,timestamp")
    titles = "\n".join(f"{i},Movie {i} (2000),Drama" for i in range(1, 17))
    (folder / "movies.csv").write_text("movieId,title,genres\n" + titles + "\n")
    data = build_dataset(load_ratings(folder), num_ng_test=3)
    named = dict(zip(data.item_ids.tolist(), data.titles.tolist()))
    assert named["3"] == "Movie 3 (2000)" and named["x9"] == "(unknown title)"


# ---- round 3: bad settings, refused before the work -----------------------------------------


BAD_PRETRAINING = [("--alpha", "5"), ("--alpha", "-1"), ("--finetune-lr", "-0.1"),
                   ("--finetune-lr", "nan")]  # fmt: skip


@pytest.mark.parametrize("flag, value", BAD_PRETRAINING)
def test_pretraining_settings_are_checked_before_training(tmp_path, capsys, flag, value):
    argv = ["train", "--dataset", SAMPLE, "--epochs", "1", "--model", "neumf", "--pretrain",
            *QUIET, "--out", str(tmp_path / "ck"), flag, value]  # fmt: skip
    out = _one_line_error(argv, capsys, flag, value)
    assert "== gmf" not in out and not (tmp_path / "ck").exists()


@pytest.mark.parametrize("value, sample", [("off", False), ("n", False), ("ON", True), ("y", True)])
def test_ncf_sample_reads_the_usual_words(monkeypatch, value, sample):
    from ncf_lib.tutorial import settings

    monkeypatch.setenv("NCF_SAMPLE", value)
    assert settings().sample is sample


def test_ncf_sample_refuses_anything_else(monkeypatch):
    from ncf_lib.errors import ConfigError
    from ncf_lib.tutorial import settings

    monkeypatch.setenv("NCF_SAMPLE", "maybe")
    with pytest.raises(ConfigError, match="NCF_SAMPLE='maybe': expected 1, true"):
        settings()


# ---- round 3: a full disk is one line, and a finished run's result is kept -------------------


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs (as root; skipped otherwise), filled up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    (mount / "out").mkdir()
    (mount / "log").mkdir()
    with open(mount / "filler", "wb") as f:
        try:
            f.write(b"\0" * (300 << 10))
        except OSError:
            pass
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_a_full_disk_is_one_line_naming_the_path(tmp_path, full_disk, capsys):
    ckpt_dir = tmp_path / "ck"
    assert main(_train_argv(tmp_path)) == 0
    ckpt = next(ckpt_dir.glob("*.pt"))
    out = _one_line_error(_train_argv(tmp_path)[:-1] + [str(full_disk / "out")], capsys,
                          str(full_disk / "out"), "No space left")  # fmt: skip
    left = [p.name for p in (full_disk / "out").iterdir() if not p.name.endswith(".lock")]
    assert left == []  # nothing half-written left behind (the lock is not an output)
    del out
    _one_line_error(["evaluate", str(ckpt), "--per-user", str(full_disk / "out" / "u.csv")],
                    capsys, "u.csv", "No space left")  # fmt: skip
    _one_line_error(["export", str(ckpt), str(full_disk / "out" / "emb")], capsys,
                    "No space left")  # fmt: skip


def test_a_full_log_disk_keeps_the_finished_run(tmp_path, full_disk, capsys):
    argv = [a for a in _train_argv(tmp_path) if a != "--no-log"] + [
        "--log-dir",
        str(full_disk / "log"),
    ]
    with pytest.warns(RuntimeWarning, match="TensorBoard logs in .* are incomplete"):
        code = main(argv)
    captured = capsys.readouterr()
    assert code == 0 and "Best epoch 001" in captured.out  # the finished run's result


def test_a_nan_row_is_named_by_its_original_id(tmp_path, capsys):
    """One user's and one item's embedding rows turned NaN (saved as a diverged run would,
    with their hash): recommend names the user's own id, similar and export the item's."""
    assert main(_train_argv(tmp_path)) == 0
    path = next((tmp_path / "ck").glob("*.pt"))
    ckpt = load_checkpoint(path)
    payload = torch.load(path, weights_only=True)
    user, item = int(np.flatnonzero(ckpt.user_ids == 6)[0]), 3
    payload["state_dict"]["user_embedding.weight"][user] = torch.nan
    payload["state_dict"]["item_embedding.weight"][item] = torch.nan
    payload["weights_sha256"] = weights_digest(payload["state_dict"])
    torch.save(payload, path)
    _one_line_error(["recommend", str(path), "--user", "6"], capsys, "user 6:", "NaN")
    item_id = str(ckpt.item_ids[item])
    other = str(ckpt.item_ids[item + 1])
    _one_line_error(["similar", str(path), "--item", other], capsys, f"item {item_id} ", "NaN")
    _one_line_error(["export", str(path), str(tmp_path / "emb")], capsys, "user 6 ", "NaN")
    assert not (tmp_path / "emb" / "items.csv").exists()


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


def test_movielens_own_formats_have_integer_ids(tmp_path, capsys):
    dat = tmp_path / "ratings.dat"
    dat.write_text("1::10::4::100\n2::x7::4::101\n3::10::5::102\n")
    _one_line_error(["info", "--dataset", str(dat)], capsys, "line 2", "'x7' is not an integer")
    udata = tmp_path / "u.data"
    udata.write_text("1\t10\t4\t100\nU2\t10\t4\t101\n")
    _one_line_error(["info", "--dataset", str(udata)], capsys, "line 2", "'U2'")


def test_info_says_which_kind_each_id_column_is(tmp_path, capsys):
    rows = _dense_rows(20, items_per_user=8, user_ids=[f"u{i:03d}" for i in range(20)])
    path = _ratings_file(tmp_path / "r.csv", rows)
    assert main(["info", "--dataset", str(path), "--num-ng-test", "5"]) == 0
    out = capsys.readouterr().out
    assert "user ids: names" in out and "item ids: integers" in out


def test_quoted_fields_and_gzip_are_read(tmp_path):
    import gzip

    text = 'user,item,rating,timestamp\n"Smith, J",1,4,10\n"Smith, J",2,5,11\nK,1,3,12\n'
    plain = tmp_path / "q.csv"
    plain.write_text(text)
    frame = read_ratings(plain)
    assert frame["user_id"].tolist() == ["Smith, J", "Smith, J", "K"]
    packed = tmp_path / "ratings.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    pd.testing.assert_frame_equal(read_ratings(packed), frame)
