"""ncf_lib.train: the epoch loop, fit's selection, early stopping, resume, L2, logs and its
settings."""

from __future__ import annotations

import random
import re
import time
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import METRICS, QUICK, SAMPLE

from ncf_lib.checkpoints import load_checkpoint
from ncf_lib.dataset import build_dataset
from ncf_lib.errors import ConfigError, TrainingDivergedError
from ncf_lib.metrics import (
    PopularityScorer,
    evaluate,
)
from ncf_lib.models import ModelConfig, build_model
from ncf_lib.ratings import Ratings, load_ratings
from ncf_lib.sampling import batches, epoch_arrays
from ncf_lib.study.grid import build_splits
from ncf_lib.synthetic import synthetic_ratings
from ncf_lib.train import (
    TrainConfig,
    add_l2_grad_,
    fit,
    make_optimizer,
    resolve_device,
    seed_everything,
    train_epoch,
    train_model,
)


@pytest.mark.numbers
def test_train_epoch_returns_the_row_weighted_mean_loss(small_data):
    rows = epoch_arrays(small_data, 4, np.random.default_rng(0))
    torch.manual_seed(0)
    model = build_model("neumf", small_data.n_users, small_data.n_items)
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)  # the weights stay where they are
    assert rows[0].shape[0] % 768  # a shorter last batch: a plain mean of batches would differ
    loss = train_epoch(model, frozen, batches(*rows, batch_size=768))
    with torch.no_grad():
        logits = model(rows[0], rows[1]).double()
        labels = rows[2].double()
        bce = torch.clamp(logits, min=0) - logits * labels + torch.log1p(torch.exp(-logits.abs()))
    assert loss == pytest.approx(float(bce.mean()), rel=1e-5)


@pytest.mark.numbers
@pytest.mark.parametrize("name, sparse", [("mf", False), ("neumf", False), ("neumf", True)])
def test_one_step_with_l2_is_sgd_on_the_penalised_loss(small_data, name, sparse):
    """``l2`` is the weight of the sum of squares of a batch's embedding rows divided by the
    batch size: one SGD step through train_epoch equals autograd's step on that loss, with
    dense embedding gradients and with sparse ones (``sparse-adam``'s tables, trained by
    ``ncf_lib.scale.optimizers.train_epoch``)."""
    from ncf_lib.scale import optimizers

    users, items, labels = (t[:64] for t in epoch_arrays(small_data, 4, np.random.default_rng(1)))
    weight, lr = 0.5, 0.1
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(build_model(name, small_data.n_users, small_data.n_items))
    by_library, by_hand = models
    for module in by_library.modules():
        if isinstance(module, torch.nn.Embedding):
            module.sparse = sparse
    epoch = optimizers.train_epoch if sparse else train_epoch
    epoch(by_library, torch.optim.SGD(by_library.parameters(), lr=lr),
          [(users, items, labels)], l2=weight)  # fmt: skip
    penalty = sum(
        module(users if "user" in n else items).pow(2).sum()
        for n, module in by_hand.named_modules()
        if isinstance(module, torch.nn.Embedding)
    )
    loss = torch.nn.BCEWithLogitsLoss()(by_hand(users, items), labels)
    (loss + weight / labels.shape[0] * penalty).backward()
    with torch.no_grad():
        for p in by_hand.parameters():
            p -= lr * p.grad
    for a, b in zip(by_library.parameters(), by_hand.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def spoiled(small_data, tmp_path_factory):
    """A trained GMF, then fine-tuned with SGD at lr 10 from ``evaluate_start``: its best
    epoch is 0 (the model as given), earlier than the last; with the weights at each epoch."""
    gmf = train_model("gmf", small_data, TrainConfig(epochs=2, lr=0.01, **QUICK)).model
    given = {k: v.clone() for k, v in gmf.state_dict().items()}
    config = TrainConfig(epochs=3, optimizer="sgd", lr=10.0, evaluate_start=True, **QUICK)
    return gmf, given, config, tmp_path_factory.mktemp("spoiled")


def _weights_at_each_epoch(model):
    seen = {}

    def on_epoch(row):
        seen[row["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}

    return seen, on_epoch


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.numbers
def test_the_selected_epoch_not_the_last_is_returned_and_saved(small_data, spoiled):
    gmf, given, config, folder = spoiled
    gmf.load_state_dict(given)
    seen, on_epoch = _weights_at_each_epoch(gmf)
    path = folder / "best.pt"
    result = fit(gmf, small_data, replace(config, checkpoint=str(path)), on_epoch=on_epoch)
    assert result.best_epoch == 0 and result.history["epoch"].max() == 3
    assert not _same(seen[3], seen[0])  # the last epoch's weights are another model
    assert _same(result.model.state_dict(), seen[0])
    saved = load_checkpoint(path)
    assert saved.epoch == 0 and _same(saved.model.state_dict(), seen[0])
    assert saved.training["history"][-1]["epoch"] == saved.training["epoch"] == 3
    assert _same(saved.training["model"], seen[3])  # the weights to resume from: the last


@pytest.mark.numbers
def test_resuming_keeps_the_earlier_best_epoch(small_data, spoiled):
    gmf, given, config, folder = spoiled
    gmf.load_state_dict(given)
    whole = fit(gmf, small_data, config)
    gmf.load_state_dict(given)
    path = folder / "cut.pt"
    fit(gmf, small_data, replace(config, epochs=2, checkpoint=str(path)))
    fresh = build_model("gmf", small_data.n_users, small_data.n_items)
    resumed = fit(fresh, small_data, config, resume=load_checkpoint(path))
    assert resumed.best_epoch == whole.best_epoch == 0
    metrics = ["epoch", "loss", "val_hr", "val_ndcg", "test_hr", "test_ndcg"]
    pd.testing.assert_frame_equal(resumed.history[metrics], whole.history[metrics])
    assert _same(resumed.model.state_dict(), given)


@pytest.mark.numbers
def test_ties_keep_the_earliest_epoch(small_data):
    # lr so small that no epoch changes a rank: every epoch ties with the first
    config = TrainConfig(epochs=3, lr=1e-30, progress=False, evaluate_start=True)
    result = train_model("gmf", small_data, config)
    assert result.history["val_hr"].nunique() == 1
    assert result.best_epoch == 0


@pytest.mark.numbers
def test_fit_applies_the_l2_weight(small_data):
    plain = train_model("mf", small_data, TrainConfig(epochs=1, progress=False))
    shrunk = train_model("mf", small_data, TrainConfig(epochs=1, l2=0.5, progress=False))
    norm = lambda r: sum(float(w.detach().norm()) for w in r.model.parameters())  # noqa: E731
    assert norm(shrunk) < norm(plain)


@pytest.mark.numbers
def test_the_seconds_of_a_fit_are_its_wall_time(small_data):
    clock = time.perf_counter()
    result = train_model("gmf", small_data, TrainConfig(epochs=2, progress=False))
    wall = time.perf_counter() - clock
    spent = result.history[["train_seconds", "eval_seconds"]].to_numpy()
    assert (spent >= 0).all() and spent.sum() <= result.seconds <= wall


@pytest.mark.numbers
def test_train_model_builds_the_model_it_is_given(small_data):
    config = ModelConfig(factor_num=4, layers=(16, 8))
    result = train_model("neumf", small_data, TrainConfig(epochs=1, progress=False), config)
    assert result.model.config == config


@pytest.mark.numbers
def test_seed_everything_seeds_python_and_numpy():
    seed_everything(3)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(3)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


@pytest.mark.numbers
def test_the_device_is_the_machines():
    cuda = torch.cuda.is_available()
    assert resolve_device().type == ("cuda" if cuda else "cpu")
    assert resolve_device("cpu").type == "cpu"
    if not cuda:
        with pytest.raises(ValueError, match="^--device cuda, but no CUDA device is available$"):
            resolve_device("cuda")


@pytest.mark.numbers
def test_divergence_with_l2_names_the_rate_and_the_weight(small_data):
    gmf = train_model("gmf", small_data, TrainConfig(epochs=1, **QUICK)).model
    config = TrainConfig(epochs=2, optimizer="sgd", lr=1e5, l2=0.5, **QUICK)
    message = "lower the learning rate (lr=100000.0, sgd) or the L2 weight (l2=0.5)"
    pattern = f"^training diverged in epoch 1: the loss is (nan|inf); {re.escape(message)}$"
    with pytest.raises(ValueError, match=pattern):
        fit(gmf, small_data, config)


@pytest.mark.numbers
def test_fit_refuses_a_k_of_all_candidates_naming_them(small_data):
    n = small_data.test.candidates.shape[1]
    model = build_model("gmf", small_data.n_users, small_data.n_items)
    with pytest.raises(ValueError, match=f"below the {n} candidates per user, got {n}: "):
        fit(model, small_data, TrainConfig(epochs=1, top_k=n, **QUICK))


@pytest.mark.numbers
@pytest.mark.parametrize("fails", ["epoch", "hparams"])
def test_an_unfinished_log_warns_once_and_keeps_the_run(small_data, tmp_path, monkeypatch, fails):
    """A full disk while an epoch's or the last record is written: the run goes on to its
    result, and one warning names the folder."""
    from tensorboardX.record_writer import RecordWriter

    write, calls = RecordWriter.write, []

    def full(self, data):
        calls.append(self)
        if fails == "epoch" and len(calls) > 3 or fails == "hparams" and "hparams" in self.path:
            raise OSError(28, "No space left on device")
        write(self, data)

    monkeypatch.setattr(RecordWriter, "write", full)
    config = TrainConfig(epochs=2, log_dir=str(tmp_path / "tb"), **QUICK)
    model = build_model("gmf", small_data.n_users, small_data.n_items)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(model, small_data, config)
    (warning,) = caught
    message = str(warning.message)
    assert message.startswith(f"TensorBoard logs in {tmp_path / 'tb'}")
    assert warning.category is RuntimeWarning
    assert "are incomplete (" in message and "No space left on device" in message
    assert result.best_epoch in (1, 2) and len(result.history) == 2


@pytest.mark.numbers
def test_fit_records_hr_at_its_own_k(small_data):
    config = TrainConfig(epochs=1, top_k=5, select_on="last", **QUICK)
    result = train_model("gmf", small_data, config)
    for split, eval_set in (("val", small_data.validation), ("test", small_data.test)):
        at_5, at_10 = (evaluate(result.model.score, eval_set, k)["hr"] for k in (5, 10))
        assert result.best[f"{split}_hr"] == at_5 != at_10


@pytest.mark.numbers
def test_selecting_on_validation_needs_validation_items(small_ratings):
    data = build_dataset(small_ratings, validation=False)
    model = build_model("gmf", data.n_users, data.n_items)
    message = "select_on='validation' needs data built with validation=True"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fit(model, data, TrainConfig(epochs=1, **QUICK))


@pytest.mark.numbers
def test_the_cores_optimizers_send_sparse_adam_to_scale():
    from ncf_lib.train import make_optimizer

    message = "make_optimizer builds adam or sgd; build another with fit(..., make_optimizer=...)"
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_optimizer(torch.nn.Linear(2, 1), TrainConfig(optimizer="sparse-adam"))


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
    "epochs": ([1, 100_000], 0, "an integer from 1 to 100,000"),
    "batch_size": ([1], 0, "an integer of at least 1"),
    "lr": ([1e-12], 0.0, "a finite number above 0"),
    "l2": ([0.0], -1e-12, "a finite number of at least 0"),
    "num_ng": ([0], -1, "an integer of at least 0"),
    "top_k": ([1], 0, "an integer of at least 1"),
    "seed": ([0, 2**32 - 1], -1, "an integer from 0 to 2**32 - 1"),
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


@pytest.mark.parametrize("name, value", [("epochs", 100_001), ("epochs", 10**20), ("seed", 2**32)])
def test_an_epoch_count_or_seed_above_its_range_is_refused(name, value):
    with pytest.raises(ConfigError, match=f"^{name} \\(--{name}\\) must be an integer from "):
        TrainConfig(**{name: value})


@pytest.mark.parametrize("name, value", [("lr", float("inf")), ("lr", float("nan")),
                                         ("l2", float("inf")), ("lr", "0.1")])  # fmt: skip
def test_a_rate_or_weight_must_be_a_finite_number(name, value):
    with pytest.raises(ConfigError, match=f"^{name} \\(--{name}\\) must be a finite number"):
        TrainConfig(**{name: value})


@pytest.mark.slow
def test_real_movielens_100k_neumf_quality(ml100k_dir):
    """The quality bar: NeuMF, seed defaults, 10 epochs, 99 negatives, validation-selected."""
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


def test_the_progress_bar_counts_each_epochs_batches(small_data, capsys):
    config = TrainConfig(epochs=2, batch_size=1024, seed=0, progress=True, select_on="test")
    train_model("gmf", small_data, config)
    shown = capsys.readouterr().err
    batches = -(-small_data.n_train * (1 + config.num_ng) // config.batch_size)
    for epoch in (1, 2):
        assert f"epoch {epoch}/2:   0%|          | 0/{batches} " in shown
    train_model("gmf", small_data, replace(config, progress=False))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("patience", [1, 3])
def test_patience_without_a_selection_hr_is_refused(patience):
    with pytest.raises(ConfigError, match="^patience \\(--patience\\) stops when .* drop one"):
        TrainConfig(patience=patience, select_on="last")
    assert TrainConfig(patience=patience, select_on="test").patience == patience
