"""Ratings files: MovieLens' three formats (and any file of the same shape) into one table,
:class:`Ratings`, by dataset name (downloaded once), ``synthetic`` or path (:func:`load_ratings`).
"""

from __future__ import annotations

import csv
import gzip
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ncf_lib.download import DATASETS, fetch
from ncf_lib.errors import DataError, MissingFileError
from ncf_lib.synthetic import ML1M_SHAPE, synthetic_movies, synthetic_ratings

#: Column names and dtypes of a ratings table with integer ids (names are kept as ``object``).
RATING_DTYPES = {"user_id": "int64", "item_id": "int64", "rating": "float32", "timestamp": "int64"}
RATINGS_FILES = ("ratings.dat", "u.data", "ratings.csv")
MOVIES_FILES = ("movies.dat", "u.item", "movies.csv")


class DataFormatError(DataError):
    """A ratings or movies file does not have the expected format (message names file and line)."""


@dataclass(frozen=True)
class Ratings:
    """Ratings with their original ids, and movie titles where the dataset has them.

    Attributes:
        ratings: columns ``user_id, item_id, rating, timestamp`` (see :data:`RATING_DTYPES`).
        movies: columns ``item_id, title, genres`` or ``None``.
        name: dataset name or file path it came from.
    """

    ratings: pd.DataFrame
    movies: pd.DataFrame | None
    name: str


def _is_number(text: str, finite: bool = False) -> bool:
    try:
        number = float(text)
    except ValueError:
        return False
    return not finite or math.isfinite(number)


def _gzipped(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _lines(path: Path):
    """The file's text lines (a gzip-compressed file is read through gzip)."""
    opener = gzip.open if _gzipped(path) else open
    return opener(path, "rt", encoding="utf-8", errors="replace")


def _split(line: str, sep: str) -> list[str]:
    """A line's fields; a comma- or tab-separated line may quote a field holding its separator."""
    line = line.rstrip("\r\n")
    return next(csv.reader([line], delimiter=sep)) if sep in (",", "\t") else line.split(sep)


def _strict_ids(path: Path, sep: str) -> bool:
    """MovieLens' own formats (``::`` files and ``u.data``) have integer ids."""
    return sep == "::" or path.name == "u.data"


def _sniff(path: Path) -> tuple[str, bool]:
    """Separator, and whether line 1 is a header (names, not numbers, as rating and time)."""
    with _lines(path) as f:
        first = f.readline().strip()
    if not first:
        raise DataFormatError(f"{path}: line 1 is empty; expected a ratings row")
    sep = "::" if "::" in first else "\t" if "\t" in first else "," if "," in first else None
    fields = _split(first, sep) if sep else []
    if len(fields) != 4:
        raise DataFormatError(
            f"{path}: line 1 ({first[:60]!r}) is not 4 fields separated by '::', tab or "
            "comma; expected user, item, rating, timestamp"
        )
    header = not (_is_number(fields[2]) and _is_number(fields[3]))
    return sep, header


def _bad_id(text: str) -> bool:
    """An id that is a number but not an integer (``1.7``, ``2e3``): refused, not truncated."""
    text = text.strip()
    return not _INTEGER.match(text) and _is_number(text)


_INTEGER = re.compile(r"^[+-]?\d+$")


def _first_bad_line(path: Path, sep: str, header: bool) -> str:
    """Describe the first row that is not ``id, id, number, number`` (errors only)."""
    strict = _strict_ids(path, sep)
    with _lines(path) as f:
        for number, line in enumerate(f, start=1):
            if header and number == 1:
                continue
            fields = _split(line, sep)
            if len(fields) == 4 and strict:
                if bad := [t for t in fields[:2] if not _INTEGER.match(t.strip())]:
                    return (
                        f"{path}: line {number}: id {bad[0].strip()!r} is not an integer; "
                        "MovieLens' own files (:: and u.data) have integer ids"
                    )
            if len(fields) == 4 and (bad := [t for t in fields[:2] if _bad_id(t)]):
                return (
                    f"{path}: line {number}: id {bad[0].strip()!r} is a number but not an "
                    "integer; expected integer ids or names"
                )
            if (
                len(fields) != 4
                or not all(t.strip() for t in fields[:2])
                or not (_is_number(fields[2], True) and _is_number(fields[3], True))
            ):
                return (
                    f"{path}: line {number} is malformed: {line.rstrip()[:80]!r}; expected "
                    f"4 fields separated by {sep!r}: user, item, rating, timestamp (finite "
                    "numbers)"
                )
    return f"{path}: could not be parsed as ratings"


def _ids(column: pd.Series, path: Path, sep: str, header: bool) -> np.ndarray:
    """Ids read as text: int64 when every one is an integer, else the names themselves."""
    text = column.str.strip()
    if text.str.fullmatch(r"[+-]?\d+").all():
        try:
            return text.astype(np.int64).to_numpy()
        except (OverflowError, ValueError):  # beyond int64: keep them as names
            return text.to_numpy(dtype=object)
    if text.map(_bad_id).any():
        raise DataFormatError(_first_bad_line(path, sep, header))
    return text.to_numpy(dtype=object)


def read_ratings(path: str | Path) -> pd.DataFrame:
    """Parse a ratings file into the common schema.

    Recognises ``UserID::MovieID::Rating::Timestamp`` (ML-1M, ML-10M), tab-separated
    ``u.data`` (ML-100K) and ``userId,movieId,rating,timestamp`` CSV (ML-20M, ML-25M,
    ml-latest), gzip-compressed too, with or without a header. Ids are int64 when every one
    is an integer (required in MovieLens' ``::`` and ``u.data`` files), else names (``007``
    kept apart from ``7``); an id such as ``1.7`` is an error, not truncated.

    Returns:
        DataFrame with columns ``user_id, item_id, rating, timestamp``: ids int64 or
        object (str), rating float32, timestamp int64, or float64 when a timestamp has a
        fraction or is beyond 2**53 (so their order is kept exactly).

    Raises:
        MissingFileError: no such file.
        DataFormatError: a malformed line; the message names the file and the line number.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such ratings file")
    sep, header = _sniff(path)
    gzipped = _gzipped(path)
    # "::" is two ':' around an empty field: the C engine reads ':', every other column kept
    c_sep, columns = (":", [0, 2, 4, 6]) if sep == "::" else (sep, [0, 1, 2, 3])
    names = list(RATING_DTYPES)

    def parse(id_dtype):
        dtypes = dict(zip(columns, [id_dtype, id_dtype, np.float64, np.float64]))
        frame = pd.read_csv(path, sep=c_sep, header=0 if header else None, engine="c",
                            dtype=dtypes, compression="gzip" if gzipped else None)  # fmt: skip
        if frame.shape[1] != columns[-1] + 1:  # a row with more fields than the first one
            raise DataFormatError(_first_bad_line(path, sep, header))
        frame = frame.iloc[:, columns]
        frame.columns = names
        return frame

    try:
        frame = parse(np.int64)
    except (ValueError, OverflowError, pd.errors.ParserError):
        if _strict_ids(path, sep):
            raise DataFormatError(_first_bad_line(path, sep, header)) from None
        try:
            frame = parse(str)
        except (ValueError, pd.errors.ParserError):
            raise DataFormatError(_first_bad_line(path, sep, header)) from None
        if frame[["user_id", "item_id"]].isna().to_numpy().any():
            raise DataFormatError(_first_bad_line(path, sep, header)) from None
        frame["user_id"] = _ids(frame["user_id"], path, sep, header)
        frame["item_id"] = _ids(frame["item_id"], path, sep, header)
    if not np.isfinite(frame[["rating", "timestamp"]].to_numpy(dtype=np.float64)).all():
        raise DataFormatError(_first_bad_line(path, sep, header))
    if frame.empty:
        raise DataFormatError(f"{path}: no ratings after the header")
    stamps = frame["timestamp"].to_numpy(dtype=np.float64)
    exact = (stamps == np.round(stamps)).all() and np.abs(stamps).max() <= 2**53
    return frame.astype({"rating": "float32", "timestamp": "int64" if exact else "float64"})


def read_movies(folder: str | Path) -> pd.DataFrame | None:
    """``item_id, title, genres`` from ``movies.dat``, ``u.item`` or ``movies.csv`` in
    ``folder`` (ids as the ratings' are read), or ``None`` when it has none."""
    folder = Path(folder)
    for name in MOVIES_FILES:
        path = folder / name
        if path.is_file():
            break
    else:
        return None
    try:
        movies = _MOVIES_READERS[name](path)
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: the file is empty; {MOVIES_LAYOUT[name]}") from None
    except pd.errors.ParserError as err:  # pandas names the line
        raise DataFormatError(f"{path}: {str(err).strip()}; {MOVIES_LAYOUT[name]}") from None
    if movies.empty:
        raise DataFormatError(f"{path}: no movies in it; {MOVIES_LAYOUT[name]}")
    ids = movies["item_id"].astype(str).str.strip()
    integer = ids.str.fullmatch(r"[+-]?\d+").all()
    movies["item_id"] = ids.astype("int64") if integer else ids.to_numpy(dtype=object)
    repeated = movies["item_id"].duplicated()
    if repeated.any():
        first = movies["item_id"][repeated].iloc[0]
        warnings.warn(
            f"{path}: {repeated.sum():,} rows repeat a movie id given above them (the first is "
            f"{first}); the first row of each id is used",
            stacklevel=2,
        )
        movies = movies[~repeated].reset_index(drop=True)
    return movies


#: What each movies file holds, for its error messages.
MOVIES_LAYOUT = {
    "movies.csv": "expected a header movieId,title,genres and a row per movie",
    "movies.dat": "expected a line per movie: id::title::genres",
    "u.item": "expected a line per movie: id|title|date|video date|url|19 genre flags",
}


def _movies_csv(path: Path) -> pd.DataFrame:
    """MovieLens' ``movies.csv``: UTF-8, or (as its older files) latin-1."""
    try:
        movies = pd.read_csv(path, encoding="utf-8", dtype=str)
    except UnicodeDecodeError:
        movies = pd.read_csv(path, encoding="latin-1", dtype=str)
    if movies.shape[1] != 3:
        raise DataFormatError(
            f"{path}, line 1: {movies.shape[1]} columns; {MOVIES_LAYOUT['movies.csv']}"
        )
    movies.columns = ["item_id", "title", "genres"]
    return movies


def _movies_dat(path: Path) -> pd.DataFrame:
    rows = []
    with open(path, encoding="latin-1") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                row = line.rstrip("\r\n").split("::", 2)
                if len(row) != 3:
                    shown = f"{line.strip()[:60]!r}"
                    layout = MOVIES_LAYOUT["movies.dat"]
                    raise DataFormatError(f"{path}, line {number}: {shown}; {layout}")
                rows.append(row)
    return pd.DataFrame(rows, columns=["item_id", "title", "genres"])


def _u_item(path: Path) -> pd.DataFrame:
    """MovieLens-100K's ``u.item`` (its genre names from ``u.genre`` beside it)."""
    genre_names = _ml100k_genres(path.parent)
    raw = pd.read_csv(path, sep="|", header=None, encoding="latin-1")
    if raw.shape[1] < 2:
        raise DataFormatError(f"{path}, line 1: one column; {MOVIES_LAYOUT['u.item']}")
    flags = raw.iloc[:, 5:].fillna(0).to_numpy(dtype=bool)
    genres = ["|".join(g for g, on in zip(genre_names, row) if on) for row in flags]
    return pd.DataFrame({"item_id": raw[0], "title": raw[1], "genres": genres})


_MOVIES_READERS = {"movies.csv": _movies_csv, "movies.dat": _movies_dat, "u.item": _u_item}


def _ml100k_genres(folder: Path) -> list[str]:
    path = folder / "u.genre"
    if path.is_file():
        with open(path, encoding="latin-1") as f:
            return [line.split("|")[0] for line in f if line.strip()]
    return [f"genre{i}" for i in range(19)]


def find_ratings_file(path: str | Path) -> Path:
    """The ratings file for a path: the file itself, or the one in a MovieLens folder or in
    one sub-folder of it (a zip extracted into a folder of its own name)."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for folder in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
            found = [folder / name for name in RATINGS_FILES if (folder / name).is_file()]
            if len(found) > 1:
                raise DataFormatError(
                    f"{folder} holds several ratings files ({', '.join(p.name for p in found)}); "
                    "give the one to use as the dataset path"
                )
            if found:
                return found[0]
        raise MissingFileError(
            f"{path}: no ratings file found; expected one of {', '.join(RATINGS_FILES)}"
        )
    raise MissingFileError(f"{path}: no such file or folder")


_SYNTHETIC = re.compile(r"^synthetic(?::(\d+)x(\d+)x(\d+))?$")
#: What a dataset that is not a path may be called (for messages).
KNOWN = f"{', '.join(DATASETS)}, synthetic, synthetic:USERSxITEMSxINTERACTIONS"


def is_named(dataset: str) -> bool:
    """Is ``dataset`` a dataset's name (downloaded or generated) rather than a path?"""
    return dataset in DATASETS or _SYNTHETIC.match(dataset) is not None


def load_ratings(
    dataset: str | Path = "ml-1m",
    data_dir: str | Path | None = None,
    *,
    seed: int = 0,
    progress: bool = True,
    read: Callable[[Path], pd.DataFrame] = read_ratings,
) -> Ratings:
    """Load ratings (and titles) by dataset name or path.

    Args:
        dataset: ``ml-1m``, ``ml-100k``, ``ml-20m``, ``ml-25m``, ``ml-latest-small``
            (downloaded once into ``data_dir``), ``synthetic`` (MovieLens-1M-shaped) or
            ``synthetic:USERSxITEMSxINTERACTIONS``, or a path to a ratings file or an
            extracted MovieLens folder.
        data_dir: download cache; default :func:`ncf_lib.download.default_data_dir`.
        seed: seed of the synthetic generator (ignored for real data).
        progress: progress bar while downloading.
        read: parses a downloaded ratings file (the command line's keeps its columns beside
            it: :func:`ncf_lib.scale.parse_cache.read_ratings_cached`).
    """
    text = str(dataset)
    match = _SYNTHETIC.match(text)
    if match:
        shape = tuple(int(g) for g in match.groups()) if match.group(1) else ML1M_SHAPE
        ratings = synthetic_ratings(*shape, seed=seed)
        return Ratings(ratings, synthetic_movies(np.unique(ratings["item_id"])), text)
    if text in DATASETS:
        folder = fetch(text, data_dir, progress=progress)
        if Path(text).exists():
            warnings.warn(
                f"{text!r} names the downloaded MovieLens dataset, read from {folder}; the "
                f"{'folder' if Path(text).is_dir() else 'file'} {text} here is not used (give "
                f"its path, e.g. ./{text}, to use it)",
                stacklevel=2,
            )
    elif Path(text).exists():
        folder = None
    else:
        raise MissingFileError(
            f"--dataset {text!r} is neither a known dataset ({KNOWN}) nor an existing file or "
            "folder"
        )
    ratings_file = find_ratings_file(folder if folder is not None else text)
    parse = read if folder is not None else read_ratings
    return Ratings(parse(ratings_file), read_movies(ratings_file.parent), text)
