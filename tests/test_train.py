"""Training: learning, model selection, early stopping, checkpoints, reproducibility."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from ncf_lib import scale
from ncf_lib.checkpoints import load_checkpoint
from ncf_lib.dataset import build_dataset
from ncf_lib.errors import ConfigError, TrainingDivergedError
from ncf_lib.metrics import PopularityScorer, evaluate
from ncf_lib.models import ModelConfig, build_model
from ncf_lib.pretraining import pretrained_neumf
from ncf_lib.ratings import Ratings, load_ratings
from ncf_lib.sampling import batches, epoch_arrays
from ncf_lib.synthetic import synthetic_ratings
from ncf_lib.train import (
    TrainConfig,
    add_l2_grad_,
    fit,
    make_optimizer,
    train_epoch,
    train_model,
)

QUICK = dict(progress=False, batch_size=256)
METRICS = ["loss", "val_hr", "val_ndcg", "test_hr", "test_ndcg"]


@pytest.fixture(scope="module")
def learnable():
    """1,000 users x 800 items x 50,000 generated ratings: NeuMF learns it in seconds."""
    frame = synthetic_ratings(1000, 800, 50_000, seed=0)
    return build_dataset(Ratings(frame, None, "synthetic:1000x800x50000"))


def test_neumf_beats_popularity_after_a_few_epochs(learnable):
    pop = evaluate(PopularityScorer.fit(learnable), learnable.test)
    result = train_model("neumf", learnable, TrainConfig(epochs=3, **QUICK))
    first = result.history.loc[0, "test_hr"]
    assert result.best["test_hr"] > pop["hr"] + 0.05
    assert result.history["test_hr"].max() > first  # it keeps improving
    assert result.history["loss"].is_monotonic_decreasing


def test_same_seed_same_history(small_data):
    a = train_model("neumf", small_data, TrainConfig(epochs=2, seed=3, **QUICK))
    b = train_model("neumf", small_data, TrainConfig(epochs=2, seed=3, **QUICK))
    c = train_model("neumf", small_data, TrainConfig(epochs=2, seed=4, **QUICK))
    pd.testing.assert_frame_equal(a.history[METRICS], b.history[METRICS])
    assert not a.history[METRICS].equals(c.history[METRICS])


def test_selection_on_validation_reports_that_epochs_test_metrics(small_data):
    result = train_model("gmf", small_data, TrainConfig(epochs=4, lr=0.01, **QUICK))
    hist = result.history
    assert result.best_epoch == int(hist.loc[hist["val_hr"].idxmax(), "epoch"])
    assert result.best["test_hr"] == hist.loc[result.best_epoch - 1, "test_hr"]


def test_select_on_test_needs_no_validation(small_ratings):
    data = build_dataset(small_ratings, validation=False)
    assert data.validation is None
    result = train_model("gmf", data, TrainConfig(epochs=3, select_on="test", lr=0.01, **QUICK))
    assert result.best["test_hr"] == result.history["test_hr"].max()
    assert "val_hr" not in result.history
    with pytest.raises(ValueError, match="validation=True"):
        train_model("gmf", data, TrainConfig(epochs=1, **QUICK))


def test_early_stopping_with_patience(small_data):
    # A learning rate this large makes validation HR stop improving quickly.
    result = train_model("gmf", small_data, TrainConfig(epochs=30, lr=0.5, patience=2, **QUICK))
    assert len(result.history) < 30
    assert len(result.history) - result.best_epoch == 2


def test_checkpoint_round_trip_gives_identical_scores(small_data, tmp_path):
    path = tmp_path / "ck" / "m.pt"
    result = train_model("neumf", small_data, TrainConfig(epochs=1, checkpoint=str(path), **QUICK))
    assert result.checkpoint == path and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temporary file left
    loaded = load_checkpoint(path)
    assert not loaded.model.training
    users = torch.arange(10)
    items = torch.randint(0, small_data.n_items, (10, 20))
    assert torch.equal(loaded.model.score(users, items), result.model.eval().score(users, items))
    assert loaded.epoch == result.best_epoch and loaded.dataset == small_data.name
    assert loaded.data == {"num_ng_test": 99, "validation": True, "seed": small_data.seed}
    assert (loaded.user_ids == small_data.user_ids).all()


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not an ncf_lib checkpoint"):
        load_checkpoint(junk)


def test_pretraining_starts_where_its_parts_are(small_data):
    cfg = TrainConfig(epochs=2, lr=0.01, **QUICK)
    gmf = train_model("gmf", small_data, cfg).model
    mlp = train_model("mlp", small_data, cfg).model
    neumf = pretrained_neumf(gmf, mlp)
    users, items = torch.arange(20), torch.randint(0, small_data.n_items, (20, 5))
    with torch.no_grad():
        expected = 0.5 * gmf.score(users, items) + 0.5 * mlp.score(users, items)
        assert torch.allclose(neumf.eval().score(users, items), expected, atol=1e-5)
    config = TrainConfig(epochs=1, optimizer="sgd", lr=0.05, evaluate_start=True, **QUICK)
    before = evaluate(neumf.eval().score, small_data.test)
    result = fit(neumf, small_data, config)
    assert result.history.loc[0, "test_hr"] == before["hr"]  # fine-tuning starts from the parts
    with pytest.raises(ValueError, match="needs a GMF and an MLP"):
        pretrained_neumf(mlp, gmf)


def test_evaluate_start_can_keep_the_model_as_given(small_data):
    cfg = TrainConfig(epochs=2, lr=0.01, **QUICK)
    gmf = train_model("gmf", small_data, cfg).model
    before = evaluate(gmf.eval().score, small_data.test)
    given = {k: v.clone() for k, v in gmf.state_dict().items()}
    # A learning rate this large makes things worse: epoch 0 must win, untouched.
    result = fit(
        gmf,
        small_data,
        TrainConfig(epochs=2, optimizer="sgd", lr=10.0, evaluate_start=True, **QUICK),
    )
    assert result.history["epoch"].tolist() == [0, 1, 2]
    assert result.history.loc[0, "test_hr"] == before["hr"]
    assert pd.isna(result.history.loc[0, "loss"])
    assert result.best_epoch == 0 and result.best["test_hr"] == before["hr"]
    for name, value in result.model.state_dict().items():
        assert torch.equal(value, given[name]), name
    # Without it, the first epoch is the earliest that can be selected.
    assert fit(gmf, small_data, TrainConfig(epochs=1, **QUICK)).best_epoch == 1


def test_divergence_is_an_error_not_a_perfect_score(small_data):
    gmf = train_model("gmf", small_data, TrainConfig(epochs=1, **QUICK)).model
    with pytest.raises(TrainingDivergedError, match="diverged in epoch 1.*lower the learning"):
        fit(gmf, small_data, TrainConfig(epochs=2, optimizer="sgd", lr=1e5, **QUICK))


def test_tensorboard_logs_hold_each_epochs_numbers(small_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = TrainConfig(epochs=2, log_dir=str(tmp_path / "tb"), evaluate_start=True, **QUICK)
    result = train_model("gmf", small_data, config)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    for key in ("loss", "val_hr", "val_ndcg", "test_hr", "test_ndcg"):
        logged = [(e.step, e.value) for e in events.Scalars(f"epoch/{key}")]
        rows = result.history[np.isfinite(result.history[key])]  # epoch 0 has no loss
        want = list(zip(rows["epoch"], rows[key]))
        assert [s for s, _ in logged] == [s for s, _ in want], key
        assert np.allclose([v for _, v in logged], [v for _, v in want]), key
    assert len(events.Scalars("epoch/loss")) == 2 and len(events.Scalars("epoch/test_hr")) == 3
    # the hyper-parameters and best metrics, as their own run, at the selected epoch
    (run,) = [p.parent for p in (tmp_path / "tb").rglob("events.out.tfevents*")
              if p.parent.name == "hparams"]  # fmt: skip
    best = EventAccumulator(str(run))
    best.Reload()
    (point,) = best.Scalars("best/test_hr")
    assert point.step == result.best_epoch and np.isclose(point.value, result.best["test_hr"])
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    content = best.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    logged = HParamsPluginData.FromString(content).session_start_info.hparams
    shown = {name: getattr(v, v.WhichOneof("kind")) for name, v in logged.items()}
    assert shown["model"] == "GMF" and shown["lr"] == config.lr and shown["epochs"] == 2
    assert shown["factor_num"] == str(result.model.config.factor_num)


#: Each setting's smallest accepted value (or every accepted name) and the first refused one,
#: with what the message says is expected.
LIMITS = {
    "epochs": ([1], 0, "an integer of at least 1"),
    "batch_size": ([1], 0, "an integer of at least 1"),
    "lr": ([1e-12], 0.0, "a finite number above 0"),
    "l2": ([0.0], -1e-12, "a finite number of at least 0"),
    "num_ng": ([0], -1, "an integer of at least 0"),
    "top_k": ([1], 0, "an integer of at least 1"),
    "seed": ([0], -1, "an integer of at least 0"),
    "optimizer": (["adam", "sgd", "sparse-adam"], "", "a name"),
    "select_on": (["validation", "test", "last"], "train", "validation, test, last"),
    "patience": ([None, 1], 0, "None or at least 1"),
    "device": (["auto", "cpu", "cuda"], "tpu", "auto, cpu, cuda"),
}


@pytest.mark.parametrize("name", LIMITS)
def test_each_training_setting_is_refused_just_past_its_limit(name):
    accepted, refused, expected = LIMITS[name]
    for value in accepted:
        assert getattr(TrainConfig(**{name: value}), name) == value
    flag = "--" + name.replace("_", "-")
    message = f"{name} ({flag}) must be {expected}, got {refused!r}"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        TrainConfig(**{name: refused})


@pytest.mark.parametrize("name, value", [("lr", float("inf")), ("lr", float("nan")),
                                         ("l2", float("inf")), ("lr", "0.1")])  # fmt: skip
def test_a_rate_or_weight_must_be_a_finite_number(name, value):
    with pytest.raises(ConfigError, match=f"^{name} \\(--{name}\\) must be a finite number"):
        TrainConfig(**{name: value})


def test_real_movielens_100k_neumf_quality(ml100k_dir):
    """The issue's bar: NeuMF, seed defaults, 10 epochs, 99 negatives, validation-selected."""
    data = build_dataset(load_ratings(ml100k_dir))
    result = train_model("neumf", data, TrainConfig(epochs=10, progress=False))
    assert result.best["test_hr"] >= 0.62
    assert result.best["test_ndcg"] >= 0.36


def test_the_optimizer_is_torch_fused_adam_or_sgd():
    model = torch.nn.Linear(3, 1)
    adam = make_optimizer(model, TrainConfig())
    assert type(adam) is torch.optim.Adam and adam.defaults["fused"]
    sgd = make_optimizer(model, TrainConfig(optimizer="sgd", lr=0.05))
    assert type(sgd) is torch.optim.SGD and sgd.defaults["lr"] == 0.05


def test_the_torch_sampler_trains_on_the_cpu_too(small_data):
    """The sampler CUDA uses by default, asked for explicitly: reproducible, and its own
    random stream (so other numbers than NumPy's)."""
    config = TrainConfig(epochs=2, **QUICK)
    runs = [
        train_model("gmf", small_data, config, **scale.fit_options(config, sampler=s)[1])
        for s in ("torch", "torch", "numpy")
    ]
    pd.testing.assert_frame_equal(runs[0].history[METRICS], runs[1].history[METRICS])
    assert not runs[0].history[METRICS].equals(runs[2].history[METRICS])
    assert runs[0].best["test_hr"] > 0.2  # it learns (random: 0.1)


def _l2_penalty(model, users, items):
    """Sum of squares of the embedding rows a batch uses, once per occurrence."""
    total = torch.zeros(())
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Embedding):
            total = total + module(users if "user" in name else items).pow(2).sum()
    return total


@pytest.mark.parametrize("name", ["mf", "neumf"])
def test_l2_gradient_equals_the_penalty_in_the_loss(name):
    torch.manual_seed(0)
    model = build_model(name, 6, 9, ModelConfig(factor_num=4, layers=(8, 4)))
    users, items = torch.tensor([0, 5, 5, 2]), torch.tensor([8, 1, 1, 3])  # repeated pair
    labels, weight = torch.tensor([1.0, 0.0, 1.0, 0.0]), 0.3
    loss_fn = torch.nn.BCEWithLogitsLoss()
    (loss_fn(model(users, items), labels) + weight * _l2_penalty(model, users, items)).backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    loss_fn(model(users, items), labels).backward()
    add_l2_grad_(model, users, items, weight)
    for p, want in zip(model.parameters(), expected):
        assert torch.allclose(p.grad, want, atol=1e-7)


def test_train_epoch_is_the_plain_loop(small_data):
    """One epoch of :func:`train_epoch` equals the textbook loop written out here."""
    rows = epoch_arrays(small_data, 4, np.random.default_rng(0))
    models = []
    for by_library in (True, False):
        torch.manual_seed(0)
        model = build_model("neumf", small_data.n_users, small_data.n_items)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
        if by_library:
            loss = train_epoch(model, optimizer, batches(*rows, batch_size=256))
        else:
            total = 0.0
            for users, items, labels in batches(*rows, batch_size=256):
                optimizer.zero_grad()
                batch_loss = torch.nn.BCEWithLogitsLoss()(model(users, items), labels)
                batch_loss.backward()
                optimizer.step()
                total += float(batch_loss.detach()) * labels.shape[0]
            written_out = total / rows[0].shape[0]
        models.append(model)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)
    assert loss == pytest.approx(written_out, rel=1e-6)


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


def test_resuming_with_another_sampler_is_refused(small_data, tmp_path):
    config = TrainConfig(epochs=1, checkpoint=str(tmp_path / "run.pt"), **QUICK)
    train_model("gmf", small_data, config)
    longer = replace(config, epochs=2, checkpoint=None)
    with pytest.raises(ConfigError, match="numpy sampler; resume it with that one, not the torch"):
        train_model("gmf", small_data, longer, resume=load_checkpoint(tmp_path / "run.pt"),
                    **scale.fit_options(longer, sampler="torch")[1])  # fmt: skip


def test_the_progress_bar_counts_each_epochs_batches(small_data, capsys):
    config = TrainConfig(epochs=2, batch_size=1024, seed=0, progress=True, select_on="test")
    train_model("gmf", small_data, config)
    shown = capsys.readouterr().err
    batches = -(-small_data.n_train * (1 + config.num_ng) // config.batch_size)
    for epoch in (1, 2):
        assert f"epoch {epoch}/2:   0%|          | 0/{batches} " in shown
    train_model("gmf", small_data, replace(config, progress=False))
    assert capsys.readouterr().err == ""
