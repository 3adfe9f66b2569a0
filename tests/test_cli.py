"""Command-line tests on generated data: output format and one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ncf_lib import scale
from ncf_lib.cli import main
from ncf_lib.ratings import load_ratings

SAMPLE = "synthetic:120x200x3000"


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


# ---- train / evaluate / recommend -----------------------------------------------------

TRAIN = ["train", "--dataset", SAMPLE, "--epochs", "1", "--no-progress"]


def _train(tmp_path, *extra):
    return main(
        TRAIN + ["--out", str(tmp_path / "ck"), "--log-dir", str(tmp_path / "runs"), *extra]
    )


def test_train_prints_epochs_and_the_seed_format_last(tmp_path, capsys):
    assert _train(tmp_path, "--model", "gmf", "--epochs", "2") == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert sum(line.startswith("epoch ") for line in out) == 2
    assert any(line.startswith("checkpoint: ") for line in out)
    assert any(line.startswith("TensorBoard logs: ") for line in out)
    assert re.fullmatch(r"Best epoch 00[12]: HR = 0\.\d{3}, NDCG = 0\.\d{3}", out[-1])
    assert (tmp_path / "ck" / "synthetic_120x200x3000-gmf.pt").is_file()
    assert any((tmp_path / "runs").iterdir())


def test_train_pretrain_trains_three_stages(tmp_path, capsys):
    assert _train(tmp_path, "--model", "neumf", "--pretrain") == 0
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
        _train(
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
    assert _train(tmp_path, "--model", "neumf") == 0
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
    from ncf_lib.use.recommend import recommend

    loaded = load_checkpoint(ckpt)
    data = build_dataset(load_ratings(SAMPLE), **loaded.data)
    user = data.user_index("5")
    items, probs = recommend(loaded.model, user, 4, exclude=data.user_history(user))
    printed = [line.split() for line in lines[2:]]
    assert [int(row[1]) for row in printed] == data.item_ids[items].tolist()
    assert [row[-1] for row in printed] == [f"{p:.3f}" for p in probs]
    assert all("Synthetic movie" in line for line in lines[2:])


def test_recommend_excludes_the_users_history(tmp_path, capsys):
    assert _train(tmp_path, "--model", "gmf") == 0
    ckpt = str(tmp_path / "ck" / "synthetic_120x200x3000-gmf.pt")
    capsys.readouterr()
    assert main(["recommend", ckpt, "--user", "7", "-k", "200"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[2:]
    shown = {int(line.split()[1]) for line in lines}
    ratings = load_ratings(SAMPLE).ratings
    rated = set(ratings.loc[ratings["user_id"] == 7, "item_id"])
    assert shown and not shown & rated
    assert len(shown) == 200 - len(rated)


def _one_line_error(argv, capsys, *needles):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return captured.out


def test_bad_arguments_are_one_line(tmp_path, capsys):
    _one_line_error(["evaluate", str(tmp_path / "nope.pt")], capsys, "no such checkpoint")
    _one_line_error(TRAIN + ["--model", "gmf", "--pretrain"], capsys, "--pretrain needs")
    _one_line_error(TRAIN + ["--pretrain", "--gmf", str(tmp_path / "g.pt")], capsys, "g.pt")
    _one_line_error(TRAIN + ["--layers", "63", "8"], capsys, "layers")
    _one_line_error(TRAIN + ["--epochs", "0"], capsys, "epochs")
    _one_line_error(TRAIN + ["--l2", "-1"], capsys, "l2")
    assert _train(tmp_path, "--model", "gmf", "--no-log") == 0
    ckpt = str(tmp_path / "ck" / "synthetic_120x200x3000-gmf.pt")
    _one_line_error(["recommend", ckpt, "--user", "99999"], capsys, "user 99999")
    _one_line_error(
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
    from ncf_lib.study.grid import MODEL_NAMES

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


# ---- one schema: train flags from TrainConfig and ModelConfig, resume through it ----------


def test_every_training_setting_has_a_flag_with_its_default():
    from dataclasses import fields

    from ncf_lib.cli import OWN_FIELDS, build_parser
    from ncf_lib.models import ModelConfig
    from ncf_lib.train import TrainConfig

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
    assert _train(tmp_path, "--model", "gmf", "--select-on", "last", "--evaluate-start") == 0
    out = capsys.readouterr().out
    assert "epoch 000  (before training)" in out and "best epoch chosen on last" in out
    assert "Best epoch 001" in out  # last: the final epoch, not epoch 0


def test_resume_refuses_a_setting_that_differs_and_may_extend_the_epochs(tmp_path, capsys):
    assert _train(tmp_path, "--model", "gmf", "--no-log", "--lr", "0.002") == 0
    ckpt = str(tmp_path / "ck" / "synthetic_120x200x3000-gmf.pt")
    resume = ["train", "--resume", ckpt, "--no-progress", "--no-log"]
    for flag, value, saved in [("--lr", "0.01", "lr 0.002"), ("--model", "mlp", "model gmf"),
                               ("--batch-size", "64", "batch_size 256"),
                               ("--layers", "32", "layers 64 32 16 8")]:  # fmt: skip
        _one_line_error([*resume, flag, value], capsys, f"{flag} {value}", saved, ckpt)
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
