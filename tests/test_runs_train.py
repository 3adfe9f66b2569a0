"""ncf_lib.runs.train: a training run's stages and checkpoints, an interruption and its resume."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import torch
from conftest import QUIET, SIZES, tiny_run

from ncf_lib.checkpoints import load_checkpoint
from ncf_lib.cli.flags import resumed_settings
from ncf_lib.errors import CheckpointError, Interrupted
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
