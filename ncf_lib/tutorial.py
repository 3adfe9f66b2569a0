"""The notebooks' settings: a notebook's ``parameters`` cell (``DATASET``, ``EPOCHS``) unless
``NCF_SAMPLE=1`` (a small generated dataset, one or two epochs: the whole tutorial in a few
minutes) or ``NCF_DATASET`` (another dataset name or folder) override it; the movies and
titles the notebooks show, with ids in their place for ratings-only data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ncf_lib.dataset import NCFData
from ncf_lib.errors import ConfigError
from ncf_lib.ratings import KNOWN, Ratings, is_named

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
    ``sample_epochs``) or ``NCF_DATASET`` (another dataset) override them.

    ``NCF_DATASET`` is a dataset's name or a path; a relative path is read from the folder
    the variable was set in, the one JupyterLab or ``make`` was started from (``$PWD``), not
    from ``notebooks/``, where the notebook runs.
    """
    text = os.environ.get(SAMPLE_ENV, "").strip().lower()
    if text not in SWITCH:
        raise ConfigError(
            f"{SAMPLE_ENV}={text!r}: expected 1, true, yes, on (the sample) or 0, false, no, "
            "off, empty (the notebook's own settings)"
        )
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"EPOCHS = {epochs!r}: expected a whole number of at least 1")
    sample = SWITCH[text]
    given = os.environ.get(DATASET_ENV, "").strip()
    chosen = _from_environment(given) if given else SAMPLE_DATASET if sample else dataset
    return Settings(sample, chosen, sample_epochs if sample else epochs, Path("outputs"))


def _from_environment(text: str) -> str:
    """``NCF_DATASET``'s dataset: a name as it is, a path made absolute (see :func:`settings`)."""
    if is_named(text):
        return text
    base = Path(os.environ.get("PWD") or os.getcwd())
    path = base / Path(text).expanduser()
    if not path.exists():
        raise ConfigError(
            f"{DATASET_ENV}={text!r} is neither a known dataset ({KNOWN}) nor an existing file "
            f"or folder (a relative path is read from {base}, where JupyterLab or make started)"
        )
    return str(path)


def movies(raw: Ratings) -> pd.DataFrame:
    """``item_id, title, genres``, one row per rated movie: the dataset's movies file, or for
    ratings without one (a ratings file given by path) the ids as titles and no genres, said
    in one printed line."""
    if raw.movies is not None:
        return raw.movies
    print(f"{raw.name} has no movies file: movies are named by their ids, without genres")
    ids = np.unique(raw.ratings["item_id"].to_numpy())
    return pd.DataFrame({"item_id": ids, "title": [f"movie {i}" for i in ids], "genres": ""})


def titles(data: NCFData) -> np.ndarray:
    """``(n_items,)`` each item's title, or ``movie ID`` for data without titles."""
    if data.titles is not None:
        return data.titles
    return np.array([f"movie {i}" for i in data.item_ids], dtype=object)
