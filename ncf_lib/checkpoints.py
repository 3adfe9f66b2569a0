"""Checkpoints: a model's weights with what is needed to rebuild and use it.

Not a pickled module (``torch.save(model)`` is refused by ``torch.load`` by default since
PyTorch 2.6 and breaks when the class moves): only tensors and plain values, loadable with
``weights_only=True``. Written to a temporary file and renamed, so a checkpoint on disk is
always complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ncf_lib.dataset import NCFData
from ncf_lib.errors import CheckpointError, MissingFileError
from ncf_lib.models import MODELS, ModelConfig, Recommender, config_dict, model_name

#: Version of the file layout; 2: NeuMF holds its four embedding tables itself.
FORMAT = 2


def save_checkpoint(
    path: str | Path,
    model: Recommender,
    data: NCFData,
    train_config: dict,
    *,
    epoch: int,
    metrics: dict[str, float],
) -> Path:
    """Save ``state_dict``, the model's and training's settings and the id maps, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model": model_name(model),
        "model_config": config_dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "n_users": model.n_users,
        "n_items": model.n_items,
        "user_ids": torch.from_numpy(np.asarray(data.user_ids, dtype=np.int64)),
        "item_ids": torch.from_numpy(np.asarray(data.item_ids, dtype=np.int64)),
        "dataset": data.name,
        "data": {
            "num_ng_test": int(data.test.candidates.shape[1] - 1),
            "validation": data.validation is not None,
            "seed": data.seed,
        },
        "train_config": json.dumps(train_config),
        "epoch": epoch,
        "metrics": metrics,
    }
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the model (in eval mode) and what it was trained on."""

    model: Recommender
    user_ids: np.ndarray
    item_ids: np.ndarray
    dataset: str
    data: dict
    train_config: dict
    epoch: int
    metrics: dict[str, float]


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
    settings = payload["model_config"]
    config = ModelConfig(**{**settings, "layers": tuple(settings["layers"])})
    model = MODELS[name](payload["n_users"], payload["n_items"], config)
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return Checkpoint(
        model,
        payload["user_ids"].numpy(),
        payload["item_ids"].numpy(),
        payload["dataset"],
        payload["data"],
        json.loads(payload["train_config"]),
        payload["epoch"],
        payload["metrics"],
    )
