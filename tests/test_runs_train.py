"""ncf_lib.runs.train: a training run's stages and checkpoints, an interruption and its resume."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from conftest import QUIET, SIZES, tiny_run

from ncf_lib.checkpoints import load_checkpoint
from ncf_lib.cli.flags import resumed_settings
from ncf_lib.dataset import build_dataset
from ncf_lib.errors import CheckpointError, Interrupted
from ncf_lib.ratings import load_ratings
from ncf_lib.runs.train import Pretraining, train_run

TRAIN_LONG = [sys.executable, "-m", "ncf_lib", "train", "--dataset", "synthetic:300x400x12000",
              "--model", "neumf", "--epochs", "4", "--seed", "5", *QUIET]  # fmt: skip


def _epoch_lines(text: str) -> list[str]:
    """Epoch lines without their timings."""
    return [line.split("   train")[0] for line in text.splitlines() if line.startswith("epoch ")]


@pytest.mark.slow
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


def test_a_run_writes_one_checkpoint_per_stage_and_announces_each(small_data, tmp_path):
    said = []
    result = train_run(
        small_data, "neumf", tiny_run(1), SIZES, out=str(tmp_path), log_dir=str(tmp_path / "logs"),
        pretraining=Pretraining(alpha=0.3), say=said.append,
    )  # fmt: skip
    stages = ["gmf", "mlp", "neumf-pretrained"]
    assert [line.split(":")[0] for line in said] == [f"== {s}" for s in stages]
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == sorted(
        f"synthetic_200x300x6000-{s}.pt" for s in stages
    )
    assert len(list((tmp_path / "logs").iterdir())) == 3  # a log folder per stage
    saved = load_checkpoint(result.checkpoint)
    assert saved.train_config["optimizer"] == "sgd"  # the paper's fine-tuning
    assert result.history["epoch"].iloc[0] == 0  # the pre-trained model is evaluated first


def test_a_part_of_another_model_is_refused_naming_both(small_data, tmp_path):
    gmf = train_run(small_data, "gmf", tiny_run(1), SIZES, out=str(tmp_path), say=lambda _: None)
    wrong = Pretraining(parts={"mlp": (str(gmf.checkpoint), load_checkpoint(gmf.checkpoint))})
    with pytest.raises(CheckpointError, match=r"--mlp .*gmf\.pt holds a GMF, not a MLP"):
        train_run(small_data, "neumf", tiny_run(1), SIZES, out=str(tmp_path), pretraining=wrong)


def test_an_interrupted_run_says_what_it_kept_and_resumes_to_the_same_weights(small_data, tmp_path):
    def stop_after_epoch_1(row: dict) -> None:
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stopped:
        train_run(small_data, "gmf", tiny_run(2), SIZES, out=str(tmp_path / "cut"),
                  on_epoch=stop_after_epoch_1, say=lambda _: None)  # fmt: skip
    path = tmp_path / "cut" / "synthetic_200x300x6000-gmf.pt"
    assert str(stopped.value) == (
        f"interrupted after epoch 1 of gmf: {path} holds the best epoch so far and can be "
        f"resumed with python -m ncf_lib train --resume {path}"
    )
    cut = load_checkpoint(path)
    config, model_config, name, num_ng_test = resumed_settings(str(path), cut, {})
    assert (name, num_ng_test, model_config) == ("gmf", 99, SIZES)
    seen = []
    resumed = train_run(  # the lock of the interrupted run was released
        small_data, name, config, model_config, resume=(str(path), cut), on_epoch=seen.append,
        say=lambda _: None,
    )  # fmt: skip
    assert [row["epoch"] for row in seen] == [1, 2]  # the saved row, then the rest
    whole = train_run(small_data, "gmf", tiny_run(2), SIZES, out=str(tmp_path / "whole"))
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def _cut_after_epoch_1(small_data, out, name="gmf"):
    """A run of 2 epochs on ``small_data`` stopped (as by Ctrl-C) after its first; its
    checkpoint and the message."""

    def stop(row: dict) -> None:
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stopped:
        train_run(small_data, name, replace(tiny_run(2), seed=small_data.seed), SIZES,
                  out=str(out), on_epoch=stop, say=lambda _: None)  # fmt: skip
    return next(out.glob(f"*-{name}.pt")), str(stopped.value)


@pytest.mark.parametrize("part", ["gmf", "mlp"])
def test_an_unfinished_part_is_not_taken_as_pre_trained(small_data, tmp_path, part):
    path, _ = _cut_after_epoch_1(small_data, tmp_path / "cut", part)
    parts = {part: (str(path), load_checkpoint(path))}
    with pytest.raises(CheckpointError) as refused:
        train_run(small_data, "neumf", tiny_run(1), SIZES, out=str(tmp_path / "ck"),
                  pretraining=Pretraining(parts=parts), say=lambda _: None)  # fmt: skip
    assert str(refused.value).startswith(
        f"--{part} {path} holds an unfinished run (after epoch 1 of 2); a pre-trained part "
        "must be a finished one"
    )
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())


@pytest.mark.parametrize("folder", ["my runs", 'it\'s "here"'])
def test_the_commands_a_run_suggests_paste_into_a_shell_and_run(tmp_path, folder):
    """Paths with a space or quotes: the suggested command is one shell line that names the
    checkpoint as one word, and running it continues the run."""
    data = build_dataset(load_ratings("synthetic:200x300x6000"), seed=42)  # as `train` builds it
    path, said = _cut_after_epoch_1(data, tmp_path / folder)
    pasted = shlex.split(said.split("can be resumed with ")[1])
    assert pasted == ["python", "-m", "ncf_lib", "train", "--resume", str(path)]
    parts = {"gmf": (str(path), load_checkpoint(path))}
    with pytest.raises(CheckpointError) as refused:
        train_run(data, "neumf", tiny_run(1), SIZES, out=str(tmp_path / "ck"),
                  pretraining=Pretraining(parts=parts), say=lambda _: None)  # fmt: skip
    finish = shlex.split(str(refused.value).split("finish it first with ")[1])
    assert finish == pasted
    done = subprocess.run([sys.executable, *finish[1:], *QUIET], cwd=tmp_path,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "resuming after epoch 1" in done.stdout
