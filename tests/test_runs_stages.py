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


def _train_on(dataset, tmp_path, *extra):
    return main(["train", "--dataset", str(dataset), "--epochs", "1", "--model", "gmf", *QUIET,
                 "--num-ng-test", "19", "--out", str(tmp_path / "ck"), *extra])  # fmt: skip


@pytest.mark.parametrize(
    "first, second",
    [("A/data/ratings.csv", "B/data/ratings.csv"), ("ml 100k", "ml_100k"), ("A/data", "B/data")],
)
def test_two_datasets_of_one_name_get_two_checkpoints(tmp_path, monkeypatch, capsys, first, second):
    """Folders or files whose names differ only in their parent folder or in characters a
    file name cannot keep: each run keeps its own checkpoint, named for what the path is."""
    monkeypatch.chdir(tmp_path)
    for n, folder in enumerate((first, second)):
        target = tmp_path / folder
        csv = target if target.suffix == ".csv" else target / "ratings.csv"
        csv.parent.mkdir(parents=True, exist_ok=True)
        ratings_file(csv, dense_rows(30 + n, items_per_user=10))
        assert _train_on(folder, tmp_path) == 0
    names = sorted(p.name for p in (tmp_path / "ck").glob("*.pt"))
    assert len(names) == 2 and names[0] != names[1], names
    for name in names:
        assert load_checkpoint(tmp_path / "ck" / name).model.n_users in (30, 31)


def test_another_spelling_of_a_path_is_the_same_data(tmp_path, monkeypatch, capsys):
    """``x/ratings.csv``, ``./x/ratings.csv`` and ``x/../x/ratings.csv`` are one file: one
    checkpoint name, and a checkpoint of one is evaluated on the others."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    ratings_file(tmp_path / "x" / "ratings.csv", dense_rows(30, items_per_user=10))
    assert _train_on("x/ratings.csv", tmp_path) == 0
    (ckpt,) = (tmp_path / "ck").glob("*.pt")
    for spelling in ("./x/ratings.csv", "x/../x/ratings.csv", str(tmp_path / "x/ratings.csv")):
        assert main(["evaluate", str(ckpt), "--dataset", spelling]) == 0, capsys.readouterr().err
    assert _train_on("./x/../x/ratings.csv", tmp_path) == 0
    assert list((tmp_path / "ck").glob("*.pt")) == [ckpt]  # the same run's file, trained again


@pytest.mark.parametrize("change", ["edited", "num-ng-test"])
def test_a_checkpoint_of_other_data_is_not_replaced(tmp_path, monkeypatch, capsys, change):
    """The ratings file edited in place since (same path, so the same checkpoint name), or
    another split of it: the run that is there is kept unless --overwrite is given."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    csv = ratings_file(tmp_path / "x" / "ratings.csv", dense_rows(30, items_per_user=10))
    assert _train_on("x", tmp_path) == 0
    (ckpt,) = (tmp_path / "ck").glob("*.pt")
    kept = ckpt.read_bytes()
    extra = []
    if change == "edited":
        ratings_file(csv, dense_rows(32, items_per_user=10))
    else:
        extra = ["--num-ng-test", "14"]
    one_line_error(["train", "--dataset", "x", "--epochs", "1", "--model", "gmf", *QUIET,
                    "--out", str(tmp_path / "ck"), "--num-ng-test", "19", *extra], capsys,
                   str(ckpt), "a run on other data", "--overwrite")  # fmt: skip
    assert ckpt.read_bytes() == kept
    assert _train_on("x", tmp_path, *extra, "--overwrite") == 0
    assert ckpt.read_bytes() != kept
