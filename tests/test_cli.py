"""The command line itself: each command's output, flags, exit codes and one-line errors
(ncf_lib.cli)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import (
    QUIET,
    SAMPLE,
    SIZES,
    TRAIN,
    dense_rows,
    one_line_error,
    ratings_file,
    run_train,
    tiny_run,
    train_argv,
)

from ncf_lib import scale
from ncf_lib.checkpoints import load_checkpoint, part_digests
from ncf_lib.cli import main
from ncf_lib.cli.flags import resumed_settings
from ncf_lib.dataset import build_dataset
from ncf_lib.errors import ConfigError
from ncf_lib.metrics import evaluate, full_ranking_metrics
from ncf_lib.models import ModelConfig
from ncf_lib.ratings import load_ratings
from ncf_lib.runs.train import train_run
from ncf_lib.study.grid import MODEL_NAMES
from ncf_lib.train import TrainConfig
from ncf_lib.use.recommend import recommend


def test_info_prints_every_key(capsys):
    assert main(["info", "--dataset", SAMPLE]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    for key in [
        "users",
        "items",
        "interactions",
        "train",
        "test users",
        "test candidates per user",
        "density",
        "seconds load",
        "seconds candidates",
    ]:
        assert key in lines
    assert lines["users"] == "120" and lines["interactions"] == "3,000"
    assert lines["test candidates per user"] == "100"


def test_info_on_a_ratings_file(tmp_path, capsys):
    path = tmp_path / "ratings.dat"
    rows = [(1, i) for i in range(1, 6)] + [(2, i) for i in range(3, 8)]
    path.write_text("".join(f"{u}::{i}::4::{u * 100 + i}\n" for u, i in rows))
    assert main(["info", "--dataset", str(path), "--num-ng-test", "2"]) == 0
    out = capsys.readouterr().out
    assert "items: 7" in out and "test candidates per user: 3" in out


def test_unknown_dataset_is_one_line_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "ncf_lib", "info", "--dataset", "nope"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr


def test_malformed_file_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "ratings.dat"
    path.write_text("1::2::3::4\n1::2::zz::4\n")  # a rating that is not a number
    assert main(["info", "--dataset", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and str(path) in err


def test_train_prints_epochs_and_the_seed_format_last(tmp_path, capsys):
    assert run_train(tmp_path, "--model", "gmf", "--epochs", "2") == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert sum(line.startswith("epoch ") for line in out) == 2
    assert any(line.startswith("checkpoint: ") for line in out)
    assert any(line.startswith("TensorBoard logs: ") for line in out)
    assert re.fullmatch(r"Best epoch 00[12]: HR = 0\.\d{3}, NDCG = 0\.\d{3}", out[-1])
    assert (tmp_path / "ck" / "synthetic_120x200x3000-gmf.pt").is_file()
    assert any((tmp_path / "runs").iterdir())


def test_train_pretrain_trains_three_stages(tmp_path, capsys):
    assert run_train(tmp_path, "--model", "neumf", "--pretrain") == 0
    out = capsys.readouterr().out
    assert "== gmf:" in out and "== mlp:" in out and "== neumf-pretrained:" in out
    ck = tmp_path / "ck"
    assert {p.name for p in ck.iterdir() if not p.name.startswith(".")} == {
        "synthetic_120x200x3000-gmf.pt",
        "synthetic_120x200x3000-mlp.pt",
        "synthetic_120x200x3000-neumf-pretrained.pt",
    }
    # ... and can reuse the parts
    assert (
        run_train(
            tmp_path,
            "--model",
            "neumf",
            "--pretrain",
            "--no-log",
            "--gmf",
            str(ck / "synthetic_120x200x3000-gmf.pt"),
            "--mlp",
            str(ck / "synthetic_120x200x3000-mlp.pt"),
        )
        == 0
    )
    assert "gmf: loaded from" in capsys.readouterr().out


def test_evaluate_and_recommend(tmp_path, capsys):
    assert run_train(tmp_path, "--model", "neumf") == 0
    ckpt = str(tmp_path / "ck" / "synthetic_120x200x3000-neumf.pt")
    capsys.readouterr()
    assert main(["evaluate", ckpt]) == 0
    out = capsys.readouterr().out
    for scorer in ("model", "popularity", "random"):
        assert f"\n{scorer}" in out
    assert main(["recommend", ckpt, "--user", "5", "-k", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("Top 4 for user 5")
    from ncf_lib.checkpoints import load_checkpoint
    from ncf_lib.dataset import build_dataset

    loaded = load_checkpoint(ckpt)
    data = build_dataset(load_ratings(SAMPLE), **loaded.data)
    user = data.user_index("5")
    items, probs = recommend(loaded.model, user, 4, exclude=data.user_history(user))
    printed = [line.split() for line in lines[2:]]
    assert [int(row[1]) for row in printed] == data.item_ids[items].tolist()
    assert [row[-1] for row in printed] == [f"{p:.3f}" for p in probs]
    assert all("Synthetic movie" in line for line in lines[2:])


def test_bad_arguments_are_one_line(tmp_path, capsys):
    one_line_error(["evaluate", str(tmp_path / "nope.pt")], capsys, "no such checkpoint")
    one_line_error(TRAIN + ["--model", "gmf", "--pretrain"], capsys, "--pretrain needs")
    one_line_error(TRAIN + ["--pretrain", "--gmf", str(tmp_path / "g.pt")], capsys, "g.pt")
    one_line_error(TRAIN + ["--layers", "63", "8"], capsys, "layers")
    one_line_error(TRAIN + ["--epochs", "0"], capsys, "epochs")
    one_line_error(TRAIN + ["--l2", "-1"], capsys, "l2")
    assert run_train(tmp_path, "--model", "gmf", "--no-log") == 0
    ckpt = str(tmp_path / "ck" / "synthetic_120x200x3000-gmf.pt")
    one_line_error(["recommend", ckpt, "--user", "99999"], capsys, "user 99999")
    one_line_error(
        ["evaluate", ckpt, "--dataset", "synthetic:100x200x3000"],
        capsys,
        "was trained on other data",
    )


def test_unknown_model_is_rejected_by_argparse(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(TRAIN + ["--model", "svd"])
    assert exit_.value.code == 2
    assert "invalid choice: 'svd'" in capsys.readouterr().err


def test_reproduce_writes_a_report_and_resumes(tmp_path, capsys, monkeypatch):
    from ncf_lib.study import baselines

    monkeypatch.setattr(baselines, "MF_L2_GRID", (0.0,))
    monkeypatch.setattr(baselines, "IALS_GRID", {"factors": (8,), "l2": (1.0,), "alpha": (5.0,)})
    runs = len(MODEL_NAMES)
    argv = [
        "reproduce",
        "--dataset",
        SAMPLE,
        "--seeds",
        "0",
        "--epochs",
        "1",
        "--only-main",
        "--out",
        str(tmp_path / "rep"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{runs} runs to do" in out and "estimated" in out and "| neumf-pre | 32 |" in out
    assert "| itemknn | 32 |" in out and "| ease | 32 |" in out and "| ials | 32 |" in out
    report = (tmp_path / "rep" / "summary.md").read_text()
    assert "## Published" in report and "![hr_at_k](hr_at_k.png)" in report
    peeking = report.split("## Had we picked the epoch on the test set")[1].split("##")[0]
    assert "| peek_hr@10 |" in peeking and "| gmf | 32 |" in peeking
    assert "| itempop |" not in peeking  # nothing to peek at without epochs
    assert "standard error over test users of one run is about 0." in report
    assert "## Sampled, corrected and full-ranking orders" in report
    assert (tmp_path / "rep" / "curves.png").is_file()
    assert (tmp_path / "rep" / "orderings.png").is_file()
    assert main(argv) == 0
    assert f"0 runs to do ({runs} already in" in capsys.readouterr().out
    assert main([*argv, "--jobs", "0"]) == 2
    assert "error: --jobs must be at least 1" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback(monkeypatch, capsys):
    """Only errors a user can fix become one line: a ValueError from inside the library (a
    bug, not a bad argument) propagates with its traceback."""

    def broken(*args, **kwargs):
        raise ValueError("an internal invariant failed")

    monkeypatch.setattr("ncf_lib.cli.build_dataset", broken)
    with pytest.raises(ValueError, match="internal invariant"):
        main(["info", "--dataset", "synthetic:50x60x900"])
    assert "error:" not in capsys.readouterr().err


def test_every_training_setting_has_a_flag_with_its_default():
    from dataclasses import fields

    from ncf_lib.cli import OWN_FIELDS, build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    actions = {a.dest: a for a in train._actions}
    for cls in (TrainConfig, ModelConfig):
        for f in fields(cls):
            if f.name in OWN_FIELDS:
                continue
            action = actions[f.name]
            assert action.option_strings == ["--" + f.name.replace("_", "-")]
            assert action.help and "``" not in action.help, f.name
            expected = scale.OPTIMIZERS if f.name == "optimizer" else f.metadata.get("choices")
            assert action.choices == expected, f.name
    assert "(default 256)" in actions["batch_size"].help
    assert actions["select_on"].choices == ("validation", "test", "last")


def test_a_setting_only_the_config_knew_is_a_flag_now(tmp_path, capsys):
    assert run_train(tmp_path, "--model", "gmf", "--select-on", "last", "--evaluate-start") == 0
    out = capsys.readouterr().out
    assert "epoch 000  (before training)" in out and "best epoch chosen on last" in out
    assert "Best epoch 001" in out  # last: the final epoch, not epoch 0


def test_resume_refuses_a_setting_that_differs_and_may_extend_the_epochs(tmp_path, capsys):
    assert run_train(tmp_path, "--model", "gmf", "--no-log", "--lr", "0.002") == 0
    ckpt = str(tmp_path / "ck" / "synthetic_120x200x3000-gmf.pt")
    resume = ["train", "--resume", ckpt, "--no-progress", "--no-log"]
    for flag, value, saved in [("--lr", "0.01", "lr 0.002"), ("--model", "mlp", "model gmf"),
                               ("--batch-size", "64", "batch_size 256"),
                               ("--layers", "32", "layers 64 32 16 8")]:  # fmt: skip
        one_line_error([*resume, flag, value], capsys, f"{flag} {value}", saved, ckpt)
    capsys.readouterr()
    assert main([*resume, "--lr", "0.002", "--model", "gmf"]) == 0  # the saved values: fine
    out = capsys.readouterr().out
    assert "resuming after epoch 1" in out and "epoch 002" not in out
    assert main([*resume, "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "== gmf: 3 epochs, adam lr 0.002" in out
    shown = [line[:9] for line in out.splitlines() if line.startswith("epoch ")]
    assert shown == ["epoch 001", "epoch 002", "epoch 003"]  # the saved epoch, then two more


COMMANDS = ("info", "train", "evaluate", "recommend", "similar", "export", "reproduce")


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_help_is_plain_text(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m ncf_lib")
    for markup in ("``", ":func:", ":class:", ":mod:", ":data:", ":meth:"):
        assert markup not in text, (command, markup)


SMALL_SHAPE = "synthetic:150x300x4500"


@pytest.mark.numbers
def test_the_printed_hr_is_the_checkpoints_hr(tmp_path, capsys):
    argv = ["train", "--dataset", SMALL_SHAPE, "--model", "gmf", "--epochs", "2", "--no-progress",
            "--no-log", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    printed = re.search(r"Best epoch \d+: HR = ([\d.]+), NDCG = ([\d.]+)", capsys.readouterr().out)
    ckpt = load_checkpoint(next(tmp_path.glob("*.pt")))
    data = build_dataset(load_ratings(SMALL_SHAPE), **ckpt.data)
    direct = evaluate(ckpt.model.score, data.test)
    assert (float(printed[1]), float(printed[2])) == (
        round(direct["hr"], 3),
        round(direct["ndcg"], 3),
    )


@pytest.mark.numbers
def test_evaluate_prints_each_scorers_numbers(tmp_path, capsys):
    assert main(["train", "--dataset", SMALL_SHAPE, "--model", "gmf", "--epochs", "1",
                 "--no-progress", "--no-log", "--out", str(tmp_path)]) == 0  # fmt: skip
    path = next(tmp_path.glob("*.pt"))
    capsys.readouterr()
    assert main(["evaluate", str(path)]) == 0
    lines = {
        tuple(line.split()[:2]): line.split()[2:]
        for line in capsys.readouterr().out.splitlines()[2:]
    }
    ckpt = load_checkpoint(path)
    data = build_dataset(load_ratings(SMALL_SHAPE), **ckpt.data)
    for split, eval_set, exclude in (("validation", data.validation, None),
                                     ("test", data.test, data.validation)):  # fmt: skip
        sampled = evaluate(ckpt.model.score, eval_set)
        full = full_ranking_metrics(ckpt.model.score, data, eval_set, 10, exclude=exclude)
        want = [f"{v:.3f}" for v in (sampled["hr"], sampled["ndcg"], full["hr"], full["ndcg"])]
        assert lines[("model", split)] == want, split


def test_recommend_prints_the_original_string_ids(tmp_path, capsys):
    names = [f"user-{u:03d}" for u in range(40)]
    rows = [(u, f"movie-{i:02d}", r, t) for u, i, r, t in dense_rows(40, user_ids=names)]
    path = ratings_file(tmp_path / "r.csv", rows, "userId,movieId,rating,timestamp")
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
    one_line_error(["recommend", str(ckpt), "--user", "nobody"], capsys, "--user nobody")


def test_output_folder_is_checked_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = one_line_error(
        train_argv(tmp_path)[:-1] + [str(blocker / "ck")], capsys, "--out", "cannot write"
    )
    assert "epoch" not in out  # nothing trained
    argv = train_argv(tmp_path) + ["--log-dir", str(blocker / "runs")]
    argv.remove("--no-log")
    one_line_error(argv, capsys, "--log-dir", "cannot write")


def test_pretrain_parts_and_evaluate_refuse_other_data(tmp_path, capsys):
    assert main(train_argv(tmp_path)) == 0
    gmf = next((tmp_path / "ck").glob("*.pt"))
    for other in ("synthetic:150x200x3000", "synthetic:100x200x3000"):  # larger and smaller
        one_line_error(
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
    one_line_error(
        ["evaluate", str(gmf), "--dataset", "synthetic:120x200x3100"],
        capsys,
        "split",
        "trained on other data",
    )
    capsys.readouterr()
    assert main(["evaluate", str(gmf)]) == 0  # its own data


def test_settings_that_make_metrics_meaningless_are_refused(tmp_path, capsys):
    one_line_error(train_argv(tmp_path, "--num-ng-test", "0"), capsys, "--num-ng-test")
    one_line_error(train_argv(tmp_path, "--top-k", "100"), capsys, "--top-k", "100 candidates")
    assert main(train_argv(tmp_path)) == 0
    ckpt = str(next((tmp_path / "ck").glob("*.pt")))
    one_line_error(["evaluate", ckpt, "--top-k", "0"], capsys, "--top-k")
    one_line_error(["recommend", ckpt, "--user", "1", "-k", "0"], capsys, "-k must be")
    one_line_error(["recommend", ckpt, "--user", "1", "-k", "-3"], capsys, "-k must be")


def test_bad_values_are_one_line_naming_the_flag(tmp_path, capsys):
    for flag, value in [("--lr", "inf"), ("--l2", "inf"), ("--seed", "-1"),
                        ("--num-ng-test", "-1")]:  # fmt: skip
        one_line_error(train_argv(tmp_path, flag, value), capsys, flag)
    one_line_error(["info", "--dataset", "synthetic:0x0x0"], capsys, "synthetic")


def test_divergence_through_l2_names_the_l2_weight(tmp_path, capsys):
    one_line_error(
        train_argv(tmp_path, "--l2", "1e30", "--optimizer", "sgd", "--lr", "10"),
        capsys,
        "diverged",
        "l2=1e+30",
    )


def test_data_with_nothing_to_evaluate_is_one_line(tmp_path, capsys):
    two = ratings_file(tmp_path / "two.csv", dense_rows(10, items_per_user=2))
    one_line_error(["train", "--dataset", str(two), *QUIET, "--num-ng-test", "5"], capsys,
                    "no user has 3 ratings", "--select-on test")  # fmt: skip
    one = ratings_file(tmp_path / "one.csv", [(u, 1, 4, t) for u in range(5) for t in (1, 2)])
    one_line_error(["info", "--dataset", str(one), "--num-ng-test", "1"], capsys, str(one))


def _trained_on_a_folder(tmp_path):
    """A checkpoint (in ``ck/``) of a ratings file in ``data/`` beside a movies file."""
    (tmp_path / "data").mkdir()
    ratings = ratings_file(tmp_path / "data" / "ratings.csv", dense_rows(30, items_per_user=10))
    (tmp_path / "data" / "movies.csv").write_text("movieId,title,genres\n1,A (1999),Drama\n")
    assert main(["train", "--dataset", str(ratings.parent), "--epochs", "1", "--model", "gmf",
                 *QUIET, "--num-ng-test", "19", "--out", str(tmp_path / "ck")]) == 0  # fmt: skip
    return next((tmp_path / "ck").glob("*.pt")), ratings


def test_an_output_never_lands_on_an_input_or_in_the_datasets_folder(tmp_path, capsys):
    """The checkpoint, the ratings file and the movies file, by other spellings too (a
    symlink, ``..``): refused before any work, with or without --force, nothing changed."""
    ckpt, ratings = _trained_on_a_folder(tmp_path)
    data = ratings.parent
    (tmp_path / "link.csv").symlink_to(ratings)
    (tmp_path / "link").symlink_to(data / "sub", target_is_directory=True)
    (data / "sub").mkdir()
    before = {p: p.read_bytes() for p in (ckpt, ratings, data / "movies.csv")}
    targets = {
        str(ckpt): "is an input",
        str(tmp_path / "ck" / ".." / "ck" / ckpt.name): "is an input",
        str(ratings): "in the dataset's folder",
        str(data / "movies.csv"): "in the dataset's folder",
        str(data / "new.csv"): "in the dataset's folder",
        str(tmp_path / "link.csv"): "in the dataset's folder",
    }
    for target, why in targets.items():
        for force in ([], ["--force"]):
            out = one_line_error(["evaluate", str(ckpt), "--per-user", target, *force], capsys,
                                 "--per-user", why)  # fmt: skip
            assert "model" not in out  # refused before any metric was computed
    for folder in (data, tmp_path / "link" / ".."):  # the dataset's folder, by two spellings
        one_line_error(["export", str(ckpt), str(folder), "--force"], capsys,
                       "in the dataset's folder")  # fmt: skip
    assert {p: p.read_bytes() for p in before} == before
    assert not (data / "new.csv").exists() and not (data / "users.csv").exists()


def test_an_existing_file_is_replaced_only_if_it_is_this_commands_output_and_forced(
    tmp_path, capsys
):
    ckpt, _ = _trained_on_a_folder(tmp_path)
    mine = tmp_path / "ranks.csv"
    assert main(["evaluate", str(ckpt), "--per-user", str(mine)]) == 0
    first = mine.read_bytes()
    one_line_error(["evaluate", str(ckpt), "--per-user", str(mine)], capsys, "already exists",
                   "--force")  # fmt: skip
    assert main(["evaluate", str(ckpt), "--per-user", str(mine), "--force"]) == 0
    assert mine.read_bytes() == first  # the same model's ranks, written again
    notes = tmp_path / "notes.csv"
    notes.write_text("my,own,notes\n")
    for force in ([], ["--force"]):
        one_line_error(["evaluate", str(ckpt), "--per-user", str(notes), *force], capsys,
                       "already exists")  # fmt: skip
    assert notes.read_text() == "my,own,notes\n"
    (tmp_path / "emb").mkdir()
    (tmp_path / "emb" / "items.csv").write_text("user_id,item_id,rating\n1,2,5\n")
    for force in ([], ["--force"]):
        one_line_error(["export", str(ckpt), str(tmp_path / "emb"), *force], capsys,
                       "items.csv already exists")  # fmt: skip
    assert (tmp_path / "emb" / "items.csv").read_text().startswith("user_id,item_id,rating")
    assert main(["export", str(ckpt), str(tmp_path / "out")]) == 0
    one_line_error(["export", str(ckpt), str(tmp_path / "out")], capsys, "already exists")
    assert main(["export", str(ckpt), str(tmp_path / "out"), "--force"]) == 0


def test_an_output_in_the_download_cache_is_refused(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    (cache / "ml-100k").mkdir(parents=True)
    rows = dense_rows(30, items_per_user=10)
    (cache / "ml-100k" / "u.data").write_text(
        "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows)
    )
    assert main(["train", "--dataset", "ml-100k", "--data-dir", str(cache), "--epochs", "1",
                 "--model", "gmf", *QUIET, "--num-ng-test", "19",
                 "--out", str(tmp_path / "ck")]) == 0  # fmt: skip
    ckpt = next((tmp_path / "ck").glob("*.pt"))
    for target in (cache / "ml-100k" / "u.data", cache / "ml-100k.zip", cache / "x" / "r.csv"):
        one_line_error(["evaluate", str(ckpt), "--data-dir", str(cache), "--per-user",
                        str(target)], capsys, "in the download cache")  # fmt: skip
    one_line_error(["export", str(ckpt), str(cache / "ml-100k"), "--data-dir", str(cache)],
                   capsys, "in the download cache")  # fmt: skip
    assert sorted(p.name for p in (cache / "ml-100k").iterdir() if p.name[0] != ".") == ["u.data"]


def test_an_output_that_is_a_folder_is_refused(tmp_path, capsys):
    ckpt, _ = _trained_on_a_folder(tmp_path)
    (tmp_path / "dir").mkdir()
    for folder in (str(tmp_path / "dir"), str(tmp_path / "new") + "/"):
        out = one_line_error(["evaluate", str(ckpt), "--per-user", folder], capsys, "is a folder")
        assert "model" not in out  # refused before any metric was computed
    assert not (tmp_path / "new").exists()


BAD_PRETRAINING = [("--alpha", "5"), ("--alpha", "-1"), ("--finetune-lr", "-0.1"),
                   ("--finetune-lr", "nan")]  # fmt: skip


@pytest.mark.parametrize("flag, value", BAD_PRETRAINING)
def test_pretraining_settings_are_checked_before_training(tmp_path, capsys, flag, value):
    argv = ["train", "--dataset", SAMPLE, "--epochs", "1", "--model", "neumf", "--pretrain",
            *QUIET, "--out", str(tmp_path / "ck"), flag, value]  # fmt: skip
    out = one_line_error(argv, capsys, flag, value)
    assert "== gmf" not in out and not (tmp_path / "ck").exists()


def test_a_full_log_disk_is_one_line_before_any_work(tmp_path, full_disk, capsys):
    """A log folder on a full disk: refused before the data is read, nothing written; a disk
    that fills up during the run is ``ncf_lib.event_log``'s (a note, and the run goes on)."""
    argv = [a for a in train_argv(tmp_path) if a != "--no-log"] + [
        "--log-dir",
        str(full_disk / "log"),
    ]
    out = one_line_error(argv, capsys, f"--log-dir {full_disk / 'log'}", "No space left")
    assert out == "" and not any((tmp_path / "ck").iterdir())


def test_a_nan_row_is_named_by_its_original_id(tmp_path, capsys):
    """One user's and one item's embedding rows turned NaN (saved as a diverged run would,
    with their hash): recommend names the user's own id, similar and export the item's."""
    assert main(train_argv(tmp_path)) == 0
    path = next((tmp_path / "ck").glob("*.pt"))
    ckpt = load_checkpoint(path)
    payload = torch.load(path, weights_only=True)
    user, item = int(np.flatnonzero(ckpt.user_ids == 6)[0]), 3
    payload["state_dict"]["user_embedding.weight"][user] = torch.nan
    payload["state_dict"]["item_embedding.weight"][item] = torch.nan
    payload["sha256"] = part_digests(payload)
    torch.save(payload, path)
    one_line_error(["recommend", str(path), "--user", "6"], capsys, "user 6:", "NaN")
    item_id = str(ckpt.item_ids[item])
    other = str(ckpt.item_ids[item + 1])
    one_line_error(["similar", str(path), "--item", other], capsys, f"item {item_id} ", "NaN")
    one_line_error(["export", str(path), str(tmp_path / "emb")], capsys, "user 6 ", "NaN")
    assert not (tmp_path / "emb" / "items.csv").exists()


def test_resumed_settings_refuse_another_value_and_may_extend_the_epochs(small_data, tmp_path):
    run = train_run(small_data, "gmf", tiny_run(1), SIZES, out=str(tmp_path), say=lambda _: None)
    saved = load_checkpoint(run.checkpoint)
    with pytest.raises(ConfigError, match=r"^--batch-size 64 conflicts .* batch_size 1024;"):
        resumed_settings(str(run.checkpoint), saved, {"batch_size": 64, "lr": None})
    with pytest.raises(ConfigError, match=r"^--layers 32 16 conflicts .* layers 16 8;"):
        resumed_settings(str(run.checkpoint), saved, {"layers": (32, 16)})
    config, *_ = resumed_settings(str(run.checkpoint), saved, {"epochs": 5, "batch_size": 1024})
    assert (config.epochs, config.batch_size) == (5, 1024)


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


@pytest.mark.parametrize("folder", ["my logs", "it's"])
def test_the_printed_tensorboard_command_pastes_into_a_shell(tmp_path, capsys, folder):
    argv = [a for a in train_argv(tmp_path) if a != "--no-log"]
    assert main([*argv, "--log-dir", str(tmp_path / folder)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("TensorBoard"))
    pasted = shlex.split(line.split("or ", 1)[1].rstrip(")"))
    assert pasted == ["tensorboard", "--logdir", str(tmp_path / folder)]


@pytest.mark.parametrize("value", ["-1", "4294967296", "18446744073709551616"])
@pytest.mark.parametrize(
    "command", [["info"], ["train"], ["evaluate", "x.pt"], ["recommend", "x.pt"], ["reproduce"]]
)
def test_every_seed_out_of_range_is_one_line_before_any_work(tmp_path, capsys, command, value):
    flag = "--seeds" if command == ["reproduce"] else "--seed"
    argv = [*command, "--dataset", SAMPLE, flag, value]
    assert one_line_error(argv, capsys, f"{flag} must be", "2**32 - 1", value) == ""


@pytest.mark.parametrize("flag", ["--epochs", "--study-epochs"])
@pytest.mark.parametrize("value", ["0", "100001", "100000000000000000000"])
def test_an_epoch_count_out_of_range_is_one_line(capsys, flag, value):
    command = ["reproduce"] if flag == "--study-epochs" else ["train"]
    one_line_error([*command, "--dataset", SAMPLE, flag, value], capsys, f"{flag} must be", value)


@pytest.mark.parametrize(
    "argv",
    [["info", "--dataset", SAMPLE], ["train", "--dataset", SAMPLE, "--epochs", "1", *QUIET]],
)
def test_output_to_a_closed_pipe_stops_quietly_with_sigpipes_status(tmp_path, argv):
    """``python -m ncf_lib ... | head -1`` where the reader has gone: no traceback, exit
    status 141 (128 + SIGPIPE) as command-line tools give."""
    reader, writer = os.pipe()
    os.close(reader)  # gone before anything is written
    out = ["--out", str(tmp_path)] if argv[0] == "train" else []
    done = subprocess.run([sys.executable, "-m", "ncf_lib", *argv, *out], stdout=writer,
                          stderr=subprocess.PIPE, text=True, cwd=tmp_path)  # fmt: skip
    os.close(writer)
    assert done.stderr == "" and done.returncode == 141
