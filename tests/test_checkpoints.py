"""ncf_lib.checkpoints: what a checkpoint keeps, what loading it verifies, and resuming from it."""

from __future__ import annotations

import re
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from conftest import QUICK, one_line_error, train_argv

from ncf_lib import scale
from ncf_lib.checkpoints import FORMAT, load_checkpoint, part_digests
from ncf_lib.cli import main
from ncf_lib.dataset import build_dataset
from ncf_lib.errors import ConfigError
from ncf_lib.models import ModelConfig, build_model
from ncf_lib.ratings import Ratings
from ncf_lib.train import (
    TrainConfig,
    fit,
    seed_everything,
    train_model,
)


@pytest.mark.numbers
@pytest.mark.parametrize("named", [False, True])
def test_a_checkpoint_keeps_ids_settings_and_weights(small_ratings, tmp_path, named):
    """``save_checkpoint`` of a model (no resume state): the original ids (integers or
    names) come back as they were, with the training settings and the same scores."""
    from dataclasses import asdict

    from ncf_lib.checkpoints import save_checkpoint

    frame = small_ratings.ratings.copy()
    if named:
        frame["user_id"] = "u" + frame["user_id"].astype(str)
    data = build_dataset(Ratings(frame, None, "ids"), seed=7)
    model = build_model("neumf", data.n_users, data.n_items)
    config = TrainConfig(epochs=3, lr=0.002)
    path = save_checkpoint(tmp_path / "deep" / "m.pt", model, data, asdict(config), epoch=2,
                           metrics={"test_hr": 0.5})  # fmt: skip
    loaded = load_checkpoint(path)
    assert loaded.user_ids.tolist() == data.user_ids.tolist()
    assert loaded.user_ids.dtype.kind == ("O" if named else "i")
    assert loaded.item_ids.dtype == np.int64 and np.array_equal(loaded.item_ids, data.item_ids)
    assert loaded.train_config == asdict(config) and loaded.training is None
    assert loaded.epoch == 2 and loaded.metrics == {"test_hr": 0.5}
    users, items = torch.arange(5), torch.arange(40).reshape(5, 8)
    assert torch.equal(loaded.model.score(users, items), model.eval().score(users, items))


def _saved(small_data, tmp_path, name="gmf.pt"):
    config = TrainConfig(epochs=2, progress=False, checkpoint=str(tmp_path / "a" / "b" / name))
    return train_model("gmf", small_data, config), config


@pytest.mark.numbers
def test_a_checkpoint_keeps_its_settings_and_metrics_in_a_new_folder(small_data, tmp_path):
    result, config = _saved(small_data, tmp_path)  # a/b/ did not exist
    ckpt = load_checkpoint(config.checkpoint)
    assert ckpt.train_config == asdict(config)
    assert ckpt.metrics == result.best and ckpt.epoch == result.best_epoch


@pytest.mark.numbers
def test_a_checkpoint_of_another_format_is_refused(small_data, tmp_path):
    _, config = _saved(small_data, tmp_path)
    payload = torch.load(config.checkpoint, weights_only=True)
    torch.save({**payload, "format": FORMAT - 1}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=f"checkpoint format {FORMAT - 1} \\(gmf\\); this "
                                         f"version reads format {FORMAT}"):  # fmt: skip
        load_checkpoint(tmp_path / "old.pt")


class _Anything:
    """An object a checkpoint must never unpickle."""


@pytest.mark.numbers
def test_a_checkpoint_holding_code_objects_is_not_unpickled(small_data, tmp_path):
    _, config = _saved(small_data, tmp_path)
    payload = torch.load(config.checkpoint, weights_only=True)
    torch.save({**payload, "metrics": _Anything()}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match="code.pt: not an ncf_lib checkpoint \\(UnpicklingError"):
        load_checkpoint(tmp_path / "code.pt")


@pytest.mark.numbers
def test_a_changed_resume_state_is_refused(small_data, tmp_path):
    _, config = _saved(small_data, tmp_path)
    payload = torch.load(config.checkpoint, weights_only=True)
    weights = dict(payload["training"]["model"])
    name = next(iter(weights))
    weights[name] = weights[name] + 1.0
    torch.save({**payload, "training": {**payload["training"], "model": weights}},
               tmp_path / "state.pt")  # fmt: skip
    with pytest.raises(ValueError, match="state.pt: damaged checkpoint: its resume weights do"):
        load_checkpoint(tmp_path / "state.pt")


@pytest.mark.numbers
def test_another_datas_checkpoint_is_refused_naming_both_values(small_ratings, tmp_path):
    from ncf_lib.checkpoints import check_same_data

    # validation items or not: another training set and another split
    trained, other = (build_dataset(small_ratings, validation=v) for v in (True, False))
    a, b = trained.fingerprint, other.fingerprint
    message = (
        f"{tmp_path / 'm.pt'} was trained on other data (train {a['train']}, split {a['split']}) "
        f"than this one (train {b['train']}, split {b['split']}); use the dataset and split "
        "settings it was trained with"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_same_data(tmp_path / "m.pt", trained.fingerprint, other)
    check_same_data(tmp_path / "m.pt", trained.fingerprint, trained)  # the same: no error


@pytest.mark.numbers
def test_a_checkpoint_rebuilds_a_model_of_other_sizes(small_data, tmp_path):
    from ncf_lib.checkpoints import save_checkpoint

    config = ModelConfig(factor_num=4, layers=(16, 8), dropout=0.25)
    seed_everything(0)
    model = build_model("neumf", small_data.n_users, small_data.n_items, config).eval()
    save_checkpoint(tmp_path / "n.pt", model, small_data, {}, epoch=1, metrics={})
    loaded = load_checkpoint(tmp_path / "n.pt").model
    assert loaded.config == config and not loaded.training
    users = torch.arange(small_data.n_users)
    items = torch.from_numpy(small_data.test.candidates)
    assert torch.equal(loaded.score(users, items), model.score(users, items))


@pytest.mark.numbers
@pytest.mark.parametrize("key", ["sha256", "n_users"])
def test_a_checkpoint_without_a_part_is_damaged_naming_it(small_data, tmp_path, key):
    _, config = _saved(small_data, tmp_path)
    payload = torch.load(config.checkpoint, weights_only=True)
    del payload[key]
    torch.save(payload, tmp_path / "part.pt")
    message = f"{tmp_path / 'part.pt'}: damaged checkpoint, it has no '{key}'"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_checkpoint(tmp_path / "part.pt")


@pytest.mark.numbers
def test_the_resume_state_does_not_hold_the_best_weights_twice(small_data, tmp_path):
    """The selected weights are the checkpoint's own ``state_dict``; the resume state holds
    the last epoch's weights beside them, not a second copy of the best."""
    _, config = _saved(small_data, tmp_path)
    training = load_checkpoint(config.checkpoint).training
    assert "best_weights" not in training and set(training["model"]) == set(
        load_checkpoint(config.checkpoint).model.state_dict()
    )


@pytest.mark.numbers
def test_resuming_a_finished_model_says_it_has_no_state(small_data, tmp_path):
    from ncf_lib.checkpoints import save_checkpoint

    model = build_model("gmf", small_data.n_users, small_data.n_items)
    save_checkpoint(tmp_path / "done.pt", model, small_data, {}, epoch=1, metrics={})
    finished = load_checkpoint(tmp_path / "done.pt")
    with pytest.raises(ValueError, match="^this checkpoint holds no training state to resume"):
        fit(model, small_data, TrainConfig(epochs=2, **QUICK), resume=finished)


@pytest.mark.numbers
def test_weights_that_do_not_fit_are_named_with_the_first_line_of_the_reason(small_data, tmp_path):
    _, config = _saved(small_data, tmp_path)
    payload = torch.load(config.checkpoint, weights_only=True)
    long_name = "x" * 200  # a reason longer than the 160 characters the message keeps
    payload["model_config"] = {**payload["model_config"], long_name: 1}
    payload["sha256"] = part_digests(payload)  # as a writer of other settings would save it
    torch.save(payload, tmp_path / "odd.pt")
    reason = f"ModelConfig.__init__() got an unexpected keyword argument '{long_name}'"[:160]
    message = f"{tmp_path / 'odd.pt'}: damaged checkpoint, its weights do not fit ({reason})"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_checkpoint(tmp_path / "odd.pt")


def test_a_nan_checkpoint_is_an_error_not_zero(tmp_path, capsys):
    assert main(train_argv(tmp_path)) == 0
    path = next((tmp_path / "ck").glob("*.pt"))
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = {
        k: torch.full_like(v, torch.nan) for k, v in payload["state_dict"].items()
    }
    payload["sha256"] = part_digests(payload)  # as a diverged run saves
    torch.save(payload, path)
    one_line_error(["evaluate", str(path)], capsys, "NaN or infinity")
    one_line_error(["recommend", str(path), "--user", "1"], capsys, "NaN or infinity")


def test_damaged_checkpoints_are_one_line(tmp_path, capsys):
    assert main(train_argv(tmp_path)) == 0
    path = next((tmp_path / "ck").glob("*.pt"))
    payload = torch.load(path, weights_only=True)
    shrunk = dict(payload, state_dict={**payload["state_dict"]})
    key = next(iter(shrunk["state_dict"]))
    shrunk["state_dict"][key] = shrunk["state_dict"][key][:3]
    shrunk["sha256"] = part_digests(shrunk)
    torch.save(shrunk, tmp_path / "shape.pt")
    one_line_error(["evaluate", str(tmp_path / "shape.pt")], capsys, "shape.pt", "do not fit")
    torch.save({k: v for k, v in payload.items() if k != "model_config"}, tmp_path / "key.pt")
    one_line_error(["evaluate", str(tmp_path / "key.pt")], capsys, "key.pt", "model_config")


def _bump(tensor: torch.Tensor) -> torch.Tensor:
    """A copy with its first element changed (as a flipped byte on disk would)."""
    changed = tensor.clone()
    changed.view(-1)[0] += 1
    return changed


def _bump_first(weights: dict) -> None:
    name = next(iter(weights))
    weights[name] = _bump(weights[name])


#: A change to each part of a saved run, by the part's name in the error.
DAMAGE = {
    "weights": lambda p: _bump_first(p["state_dict"]),
    "resume weights": lambda p: _bump_first(p["training"]["model"]),
    "optimizer state": lambda p: p["training"]["optimizer"]["state"][0].update(
        exp_avg=_bump(p["training"]["optimizer"]["state"][0]["exp_avg"])
    ),
    "id maps": lambda p: p.update(user_ids=p["user_ids"].flip(0)),
    "random generators' state": lambda p: p["training"].update(
        torch_rng=_bump(p["training"]["torch_rng"])
    ),
    "history": lambda p: p["training"]["history"][0].update(test_hr=0.99),
    "settings": lambda p: p.update(train_config=p["train_config"].replace('"lr": ', '"lr": 1')),
}  # fmt: skip


@pytest.mark.parametrize("part", DAMAGE)
def test_a_change_to_any_part_is_refused_naming_the_part(tmp_path, capsys, part):
    """Every part loading or resuming uses is covered by a SHA-256: a changed byte in the
    weights, the optimiser's moments, the id maps, the generators' states, the history or the
    settings is refused in one line naming the file and the part; the file untouched loads."""
    assert main(train_argv(tmp_path)) == 0
    path = next((tmp_path / "ck").glob("*.pt"))
    payload = torch.load(path, weights_only=True)
    torch.save(payload, tmp_path / "same.pt")
    assert load_checkpoint(tmp_path / "same.pt").epoch == 1
    DAMAGE[part](payload)
    torch.save(payload, tmp_path / "damaged.pt")
    one_line_error(["evaluate", str(tmp_path / "damaged.pt")], capsys, "damaged.pt",
                   f"its {part} do not match the SHA-256")  # fmt: skip


def test_a_resume_from_a_damaged_optimizer_state_is_refused(tmp_path, capsys):
    assert main(train_argv(tmp_path)) == 0
    path = next((tmp_path / "ck").glob("*.pt"))
    payload = torch.load(path, weights_only=True)
    DAMAGE["optimizer state"](payload)
    torch.save(payload, path)
    one_line_error(train_argv(tmp_path, "--resume", str(path), "--epochs", "2"), capsys,
                   "optimizer state do not match")  # fmt: skip


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


def test_resuming_with_another_sampler_is_refused(small_data, tmp_path):
    config = TrainConfig(epochs=1, checkpoint=str(tmp_path / "run.pt"), **QUICK)
    train_model("gmf", small_data, config)
    longer = replace(config, epochs=2, checkpoint=None)
    with pytest.raises(ConfigError, match="numpy sampler; resume it with that one, not the torch"):
        train_model("gmf", small_data, longer, resume=load_checkpoint(tmp_path / "run.pt"),
                    **scale.fit_options(longer, sampler="torch")[1])  # fmt: skip
