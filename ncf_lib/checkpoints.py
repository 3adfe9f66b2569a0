"""Checkpoints: a model's weights with what rebuilds and uses it, and the state of an
unfinished :func:`ncf_lib.train.fit` (:class:`TrainingState`), so that an interrupted run
resumes and ends with the numbers of one that was not.

Tensors and plain values only, loadable with ``weights_only=True`` (a pickled module is
refused by ``torch.load`` by default and breaks when its class moves); written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ncf_lib.dataset import NCFData
from ncf_lib.errors import CheckpointError, ConfigError, MissingFileError
from ncf_lib.files import atomic_write
from ncf_lib.models import MODELS, ModelConfig, Recommender, config_dict, model_name

#: Version of the file layout (5: a SHA-256 of every part, :func:`part_digests`).
FORMAT = 5

#: The parts of a checkpoint a SHA-256 covers, by the name an error gives them: the keys of
#: the saved payload (and of its resume state) each one holds.
PARTS = {
    "weights": ("state_dict",),
    "settings": (
        "model", "model_config", "n_users", "n_items", "dataset", "fingerprint", "data",
        "train_config", "epoch", "metrics",
    ),
    "id maps": ("user_ids", "item_ids"),
}  # fmt: skip
TRAINING_PARTS = {
    "resume weights": ("model",),
    "optimizer state": ("optimizer",),
    "random generators' state": ("torch_rng", "sampler"),
    "history": ("history", "epoch", "next_epoch", "best_epoch", "best_hr", "stale", "stopped"),
}


def _feed(digest, value) -> None:
    """Add ``value`` (tensors, arrays, dicts, lists and plain values, nested) to ``digest``."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}|".encode())
        digest.update(tensor.flatten().view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}|".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}|".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__}:{value!r}|".encode())


def part_digests(payload: dict) -> dict[str, str]:
    """SHA-256 of each part of a checkpoint's payload (:data:`PARTS`, and with a resume state
    :data:`TRAINING_PARTS`), by part name: everything loading or resuming uses."""
    groups = [(payload, PARTS)]
    if payload.get("training") is not None:
        groups.append((payload["training"], TRAINING_PARTS))
    digests = {}
    for source, parts in groups:
        for part, keys in parts.items():
            digest = hashlib.sha256()
            _feed(digest, {key: source[key] for key in keys})
            digests[part] = digest.hexdigest()
    return digests


def _ids_out(ids: np.ndarray):
    """Integer ids as an int64 tensor, names as a list of str (both ``weights_only``-safe)."""
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return torch.from_numpy(ids.astype(np.int64))
    return [str(x) for x in ids.tolist()]


def _ids_in(ids) -> np.ndarray:
    return ids.numpy() if isinstance(ids, torch.Tensor) else np.array(ids, dtype=object)


def save_checkpoint(
    path: str | Path,
    model: Recommender,
    data: NCFData,
    train_config: dict,
    *,
    epoch: int,
    metrics: dict[str, float],
    training: dict | None = None,
    weights: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Save the weights (``weights``, else the model's), the settings, the id maps and the
    data's fingerprint, and ``training``: what resuming needs (:func:`save_training`)."""
    weights = {
        k: v.detach().cpu() for k, v in (model.state_dict() if weights is None else weights).items()
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model": model_name(model),
        "model_config": config_dict(model.config),
        "state_dict": weights,
        "n_users": model.n_users,
        "n_items": model.n_items,
        "user_ids": _ids_out(data.user_ids),
        "item_ids": _ids_out(data.item_ids),
        "dataset": data.name,
        "fingerprint": data.fingerprint,
        "data": {
            "num_ng_test": int(data.test.candidates.shape[1] - 1),
            "validation": data.validation is not None,
            "seed": data.seed,
        },
        "train_config": json.dumps(train_config),
        "epoch": epoch,
        "metrics": metrics,
        "training": training,
    }
    payload["sha256"] = part_digests(payload)
    buffer = io.BytesIO()  # serialised first, so a full disk is an OSError naming the file
    torch.save(payload, buffer)
    with atomic_write(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return path


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the model (in eval mode) and what it was trained on.

    Attributes:
        fingerprint: :attr:`~ncf_lib.dataset.NCFData.fingerprint` of the training data.
        training: the state to resume training from, or ``None``.
    """

    model: Recommender
    user_ids: np.ndarray
    item_ids: np.ndarray
    dataset: str
    data: dict
    train_config: dict
    epoch: int
    metrics: dict[str, float]
    fingerprint: dict
    training: dict | None


def load_checkpoint(path: str | Path, device: str = "cpu") -> Checkpoint:
    """Rebuild a model from :func:`save_checkpoint`'s file (no training code needed)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
        version, name = payload["format"], payload["model"]
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise CheckpointError(f"{path}: not an ncf_lib checkpoint ({type(err).__name__})") from None
    if version != FORMAT or name not in MODELS:
        raise CheckpointError(
            f"{path}: checkpoint format {version} ({name}); this version reads format "
            f"{FORMAT}: train the model again"
        )
    try:
        saved, digests = payload["sha256"], part_digests(payload)
    except KeyError as err:
        raise CheckpointError(f"{path}: damaged checkpoint, it has no {err}") from None
    for part, digest in digests.items():
        if saved.get(part) != digest:
            raise CheckpointError(
                f"{path}: damaged checkpoint: its {part} do not match the SHA-256 saved with it"
            )
    try:
        settings = payload["model_config"]
        config = ModelConfig(**{**settings, "layers": tuple(settings["layers"])})
        model = MODELS[name](payload["n_users"], payload["n_items"], config)
        model.load_state_dict(payload["state_dict"])
        saved = ("dataset", "data", "epoch", "metrics", "fingerprint", "training")
        checkpoint = Checkpoint(
            model, *(_ids_in(payload[k]) for k in ("user_ids", "item_ids")),
            train_config=json.loads(payload["train_config"]), **{k: payload[k] for k in saved},
        )  # fmt: skip
    except KeyError as err:
        raise CheckpointError(f"{path}: damaged checkpoint, it has no {err}") from None
    except (RuntimeError, TypeError, ValueError) as err:  # shapes or settings that do not fit
        reason = str(err).strip().splitlines()[0][:160]
        raise CheckpointError(
            f"{path}: damaged checkpoint, its weights do not fit ({reason})"
        ) from None
    model.to(device).eval()
    return checkpoint


def check_same_data(path: str | Path, trained_on: dict, data: NCFData) -> None:
    """:class:`CheckpointError` naming both when ``trained_on`` is another fingerprint than
    ``data``'s (another file, other ids, another split)."""
    here = data.fingerprint
    if trained_on != here:
        differ = [key for key in here if trained_on.get(key) != here[key]]
        show = lambda fp: ", ".join(f"{k} {fp.get(k)}" for k in differ)  # noqa: E731
        raise CheckpointError(
            f"{path} was trained on other data ({show(trained_on)}) than this one "
            f"({show(here)}); use the dataset and split settings it was trained with"
        )


@dataclass
class TrainingState:
    """Where a :func:`~ncf_lib.train.fit` stands after an epoch.

    Attributes:
        next_epoch: the epoch to train next.
        history: a row per finished epoch.
        best_epoch, best_hr: the selected epoch so far and its selection HR.
        best_weights: that epoch's ``state_dict``.
        stale: epochs since the selection HR last improved.
        stopped: early stopping ended the run.
    """

    next_epoch: int
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_hr: float = -1.0
    best_weights: dict[str, torch.Tensor] | None = None
    stale: int = 0
    stopped: bool = False

    def best_metrics(self) -> dict[str, float]:
        """The selected epoch's metrics (``test_hr``, ``val_ndcg``, ...)."""
        row = next(row for row in self.history if row["epoch"] == self.best_epoch)
        return {k: v for k, v in row.items() if k.endswith(("_hr", "_ndcg"))}


def save_training(
    path: str | Path,
    model: Recommender,
    data: NCFData,
    train_config: dict,
    state,
    optimizer,
    sampler,
) -> Path:
    """Checkpoint the selected weights so far, and what resuming after ``state``'s last epoch
    needs: the current weights, the optimiser's state, torch's and the sampler's states."""
    training = {
        **{k: v for k, v in asdict(state).items() if k != "best_weights"},
        "epoch": state.next_epoch - 1,  # the last finished epoch
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "sampler": {"kind": sampler.kind, "state": sampler.state()},
    }
    return save_checkpoint(
        path,
        model,
        data,
        train_config,
        epoch=state.best_epoch,
        metrics=state.best_metrics(),
        training=training,
        weights=state.best_weights,
    )


def restore_training(
    checkpoint: Checkpoint, model: Recommender, optimizer, sampler
) -> TrainingState:
    """Put ``model``, ``optimizer``, torch's generator and ``sampler`` back where
    :func:`save_training` left them; return the state to continue from."""
    saved = checkpoint.training
    if saved is None:
        raise CheckpointError("this checkpoint holds no training state to resume from")
    kind = saved["sampler"]["kind"]
    if kind != sampler.kind:
        raise ConfigError(
            f"this run drew its negatives with the {kind} sampler; resume it with that one, "
            f"not the {sampler.kind} sampler"
        )
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["torch_rng"])
    sampler.load_state(saved["sampler"]["state"])
    fields = {k: saved[k] for k in ("next_epoch", "best_epoch", "best_hr", "stale", "stopped")}
    return TrainingState(
        **fields,
        history=[dict(row) for row in saved["history"]],
        best_weights={k: v.detach().clone() for k, v in checkpoint.model.state_dict().items()},
    )
