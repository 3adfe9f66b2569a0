"""ncf_lib.runs.stages: a run's files: the checkpoint lock, unique log folders, unfinished runs
kept."""

from __future__ import annotations

import pytest
from conftest import QUIET, SAMPLE, dense_rows, one_line_error, ratings_file, train_argv

from ncf_lib.checkpoints import load_checkpoint
from ncf_lib.cli import main
from ncf_lib.files import exclusive_lock
from ncf_lib.ratings import load_ratings


def test_a_second_run_on_the_same_checkpoint_stops_with_a_message(tmp_path, capsys):
    ckpt = tmp_path / "ck" / f"{SAMPLE.replace(':', '_')}-gmf.pt"
    ckpt.parent.mkdir()
    with exclusive_lock(ckpt.with_name(f".{ckpt.name}.lock")):  # as another process would
        one_line_error(train_argv(tmp_path), capsys, str(ckpt), "another training run")
    assert main(train_argv(tmp_path)) == 0  # once it is free


def test_tensorboard_folders_are_unique_per_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("time.strftime", lambda *_: "20261201-120000")  # the same second
    argv = [a for a in train_argv(tmp_path) if a != "--no-log"] + ["--log-dir", str(tmp_path)]
    assert main(argv) == 0 and main(argv) == 0
    runs = [p for p in tmp_path.iterdir() if p.name.startswith("synthetic")]
    assert len(runs) == 2


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
    one_line_error(train_argv(tmp_path), capsys, str(path), "unfinished run (after epoch 1 of 3)",
                    "--resume", "--overwrite")  # fmt: skip
    assert path.read_bytes() == kept
    assert main(train_argv(tmp_path, "--overwrite")) == 0
    assert load_checkpoint(path).training["next_epoch"] == 2  # the new, finished 1-epoch run
    assert main(train_argv(tmp_path)) == 0  # a finished run may be replaced


def test_two_ratings_files_of_one_name_get_two_checkpoints(tmp_path, capsys):
    for folder in ("A", "B"):
        (tmp_path / folder).mkdir()
        ratings_file(tmp_path / folder / "ratings.csv", dense_rows(30, items_per_user=10))
        assert main(["train", "--dataset", str(tmp_path / folder / "ratings.csv"), "--epochs",
                     "1", "--model", "gmf", *QUIET, "--num-ng-test", "19",
                     "--out", str(tmp_path / "ck")]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "ck").glob("*.pt")) == [
        "A-ratings.csv-gmf.pt", "B-ratings.csv-gmf.pt"
    ]  # fmt: skip
