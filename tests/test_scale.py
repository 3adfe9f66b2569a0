"""ncf_lib.scale.fit_options: fit's defaults in one process, the torchrun pieces under torchrun."""

from __future__ import annotations

import pytest
from conftest import QUICK

from ncf_lib import scale
from ncf_lib.errors import ConfigError
from ncf_lib.train import TrainConfig


def test_fit_options_are_fits_defaults_in_one_process_and_torchrun_under_it(monkeypatch):
    from ncf_lib.scale.distributed import TrainEpoch
    from ncf_lib.scale.distributed import evaluate as evaluate_over_ranks

    config = TrainConfig(checkpoint="run.pt", log_dir="logs", **QUICK)
    assert scale.fit_options(config) == (config, {})  # fit's own defaults
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr("ncf_lib.scale.distributed.start", lambda ranks, device: device)
    rank1, options = scale.fit_options(config)
    assert isinstance(options["train_epoch"], TrainEpoch)
    assert options["evaluate"] is evaluate_over_ranks
    assert (rank1.checkpoint, rank1.log_dir, rank1.progress) == (None, None, False)


def test_an_optimizer_fit_options_cannot_build_is_refused():
    with pytest.raises(ConfigError, match="optimizer .--optimizer. must be one of adam, sgd"):
        scale.fit_options(TrainConfig(optimizer="adamw"))
