"""Settings the notebooks share: full runs on MovieLens-1M, or a small sample for quick runs.

``NCF_SAMPLE=1`` switches every notebook to a small generated dataset and one or two epochs,
so the whole tutorial executes in a few minutes (``make test`` does this). ``NCF_DATASET``
points the notebooks at another dataset name or path, e.g. a local MovieLens-100K folder.
"""

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
    """What a notebook should run on.

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


def settings(epochs: int = 10, sample_epochs: int = 2) -> Settings:
    """Read ``NCF_SAMPLE`` / ``NCF_DATASET`` and return the notebook settings."""
    text = os.environ.get(SAMPLE_ENV, "").strip().lower()
    if text not in SWITCH:
        raise ConfigError(
            f"{SAMPLE_ENV}={text!r}: expected 1, true, yes, on (the sample) or 0, false, no, "
            "off, empty (the full dataset)"
        )
    sample = SWITCH[text]
    dataset = os.environ.get(DATASET_ENV) or (SAMPLE_DATASET if sample else "ml-1m")
    return Settings(sample, dataset, sample_epochs if sample else epochs, Path("outputs"))
