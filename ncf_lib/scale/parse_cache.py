"""Ratings files parsed once: the parsed columns kept beside a downloaded ratings file (the
command line's reader of downloads; on MovieLens-20M's CSV 2.0 s instead of 4.5 s, more for
``::``-separated files and ids that are names, as measured in ``docs/scaling.md``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ncf_lib import ratings
from ncf_lib.files import atomic_write
from ncf_lib.ratings import RATING_DTYPES

#: Bumped when :func:`~ncf_lib.ratings.read_ratings` changes what it returns, so older
#: caches are parsed again.
PARSE_VERSION = 3


def content_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (MovieLens-20M's 533 MB: about a second, see
    ``docs/scaling.md``)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_ratings_cached(path: str | Path) -> pd.DataFrame:
    """:func:`ncf_lib.ratings.read_ratings`, parsed once: the columns are kept in
    ``.NAME.parsed.npz`` beside the file and read from there while the file has the same
    content (its SHA-256; a file edited in place with the same size and time is parsed
    again). A cache of another parser version or a damaged cache is parsed again; a folder
    that cannot be written to gets no cache."""
    path = Path(path)
    cache = path.with_name(f".{path.name}.parsed.npz")
    key = np.array([f"{PARSE_VERSION}:{content_digest(path)}"])
    try:
        with np.load(cache, allow_pickle=False) as saved:
            if np.array_equal(saved["key"], key):
                columns = {name: saved[name] for name in RATING_DTYPES}
                for name in ("user_id", "item_id"):
                    if columns[name].dtype.kind == "U":  # names, stored as fixed-width text
                        columns[name] = columns[name].astype(object)
                return pd.DataFrame(columns)
    except (OSError, ValueError, KeyError, EOFError):
        pass  # no cache yet, or a damaged one: parse the file
    frame = ratings.read_ratings(path)
    numeric = {name: pd.api.types.is_numeric_dtype(frame[name]) for name in RATING_DTYPES}
    columns = {  # names as fixed-width text: loading them needs no pickle
        name: frame[name].to_numpy(dtype=None if numeric[name] else str) for name in RATING_DTYPES
    }
    try:
        with atomic_write(cache) as tmp, open(tmp, "wb") as f:
            np.savez(f, key=key, **columns)
    except OSError:
        pass  # a read-only folder: parse every time
    return frame
