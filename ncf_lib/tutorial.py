"""The notebooks' settings: a notebook's ``parameters`` cell (``DATASET``, ``EPOCHS``) unless
``NCF_SAMPLE=1`` (a small generated dataset, one or two epochs: the whole tutorial in a few
minutes) or ``NCF_DATASET`` (another dataset name or folder) override it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ncf_lib.errors import ConfigError

SAMPLE_ENV = "NCF_SAMPLE"
DATASET_ENV = "NCF_DATASET"
#: How ``NCF_SAMPLE`` may be written (case is ignored; empty is off).
SWITCH = {"1": True, "true": True, "yes": True, "on": True, "y": True,
          "0": False, "false": False, "no": False, "off": False, "n": False, "": False}  # fmt: skip
#: The small sample: small enough that every notebook runs in seconds, large enough to learn.
SAMPLE_DATASET = "synthetic:600x800x24000"


@dataclass(frozen=True)
class Settings:
    """What a notebook runs on.

    Attributes:
        sample: running on the small sample.
        dataset: dataset name or path for :func:`ncf_lib.ratings.load_ratings`.
        epochs: training epochs per model.
        out: folder for checkpoints and TensorBoard logs.
    """

    sample: bool
    dataset: str
    epochs: int
    out: Path


def settings(dataset: str = "ml-100k", epochs: int = 10, sample_epochs: int = 2) -> Settings:
    """The notebook's ``dataset`` and ``epochs``, unless ``NCF_SAMPLE`` (the small sample and
    ``sample_epochs``) or ``NCF_DATASET`` (another dataset) override them."""
    text = os.environ.get(SAMPLE_ENV, "").strip().lower()
    if text not in SWITCH:
        raise ConfigError(
            f"{SAMPLE_ENV}={text!r}: expected 1, true, yes, on (the sample) or 0, false, no, "
            "off, empty (the notebook's own settings)"
        )
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"EPOCHS = {epochs!r}: expected a whole number of at least 1")
    sample = SWITCH[text]
    chosen = os.environ.get(DATASET_ENV) or (SAMPLE_DATASET if sample else dataset)
    return Settings(sample, chosen, sample_epochs if sample else epochs, Path("outputs"))
