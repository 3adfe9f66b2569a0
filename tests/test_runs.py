"""A training run on disk (ncf_lib.runs) called from Python, as the command line calls it."""

from __future__ import annotations

import pytest
import torch

from ncf_lib.checkpoints import load_checkpoint
from ncf_lib.cli.flags import resumed_settings
from ncf_lib.errors import CheckpointError, ConfigError, Interrupted
from ncf_lib.models import ModelConfig
from ncf_lib.runs.train import Pretraining, train_run
from ncf_lib.train import TrainConfig

SIZES = ModelConfig(factor_num=8, layers=(16, 8))


def _config(epochs: int = 2) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=1024, progress=False)


def test_a_run_writes_one_checkpoint_per_stage_and_announces_each(small_data, tmp_path):
    said = []
    result = train_run(
        small_data, "neumf", _config(1), SIZES, out=str(tmp_path), log_dir=str(tmp_path / "logs"),
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
    gmf = train_run(small_data, "gmf", _config(1), SIZES, out=str(tmp_path), say=lambda _: None)
    wrong = Pretraining(parts={"mlp": (str(gmf.checkpoint), load_checkpoint(gmf.checkpoint))})
    with pytest.raises(CheckpointError, match=r"--mlp .*gmf\.pt holds a GMF, not a MLP"):
        train_run(small_data, "neumf", _config(1), SIZES, out=str(tmp_path), pretraining=wrong)


def test_an_interrupted_run_says_what_it_kept_and_resumes_to_the_same_weights(small_data, tmp_path):
    def stop_after_epoch_1(row: dict) -> None:
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stopped:
        train_run(small_data, "gmf", _config(2), SIZES, out=str(tmp_path / "cut"),
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
    whole = train_run(small_data, "gmf", _config(2), SIZES, out=str(tmp_path / "whole"))
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_resumed_settings_refuse_another_value_and_may_extend_the_epochs(small_data, tmp_path):
    run = train_run(small_data, "gmf", _config(1), SIZES, out=str(tmp_path), say=lambda _: None)
    saved = load_checkpoint(run.checkpoint)
    with pytest.raises(ConfigError, match=r"^--batch-size 64 conflicts .* batch_size 1024;"):
        resumed_settings(str(run.checkpoint), saved, {"batch_size": 64, "lr": None})
    with pytest.raises(ConfigError, match=r"^--layers 32 16 conflicts .* layers 16 8;"):
        resumed_settings(str(run.checkpoint), saved, {"layers": (32, 16)})
    config, *_ = resumed_settings(str(run.checkpoint), saved, {"epochs": 5, "batch_size": 1024})
    assert (config.epochs, config.batch_size) == (5, 1024)
