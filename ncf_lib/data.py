"""Data for NCF: ratings files, re-indexing, the leave-one-out split and negative sampling.

The flow (see ``design.md``)::

    load_ratings("ml-1m" | "synthetic" | path)  -> Ratings (one DataFrame schema + titles)
    build_dataset(ratings, num_ng_test=99)        -> NCFData (contiguous ids, split, candidates)
    epoch_arrays(data, num_ng=4, rng)              -> shuffled (users, items, labels) tensors
    DeviceSampler(data, 4, seed, "cuda").epoch()   -> the same, drawn on a GPU
    batches(*arrays, batch_size=256)               -> slices of those tensors

Every rating counts as a positive interaction (implicit feedback, as in the paper). All
randomness goes through a ``numpy.random.Generator`` or an integer seed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ncf_lib.download import DATASETS, fetch

#: Column names and dtypes of every ratings table, whatever file it came from.
RATING_DTYPES = {"user_id": "int32", "item_id": "int32", "rating": "float32", "timestamp": "int64"}
RATINGS_FILES = ("ratings.dat", "u.data", "ratings.csv")
MOVIES_FILES = ("movies.dat", "u.item", "movies.csv")
#: Shape of MovieLens-1M, the default size of the synthetic data.
ML1M_SHAPE = (6040, 3706, 1_000_209)
#: Largest users x items for which membership tests use a dense bool table (bytes).
DENSE_MASK_LIMIT = 1 << 28


class DataFormatError(ValueError):
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


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


def _sniff(path: Path) -> tuple[str, bool]:
    """Separator and whether there is a header, from the first line of a ratings file."""
    with open(path, "rb") as f:
        first = f.readline().decode("utf-8", "replace").strip()
    if not first:
        raise DataFormatError(f"{path}: line 1 is empty; expected a ratings row")
    sep = "::" if "::" in first else "\t" if "\t" in first else "," if "," in first else None
    if sep is None:
        raise DataFormatError(
            f"{path}: line 1 ({first[:60]!r}) is not '::'-, tab- or comma-separated; "
            "expected user, item, rating, timestamp"
        )
    header = not first.split(sep)[0].strip().lstrip("-").isdigit()
    return sep, header


def _first_bad_line(path: Path, sep: str, header: bool) -> str:
    """Describe the first row that is not four numbers (the slow path, errors only)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if header and number == 1:
                continue
            fields = line.rstrip("\r\n").split(sep)
            try:
                if len(fields) != 4:
                    raise ValueError
                int(fields[0]), int(fields[1]), float(fields[2]), int(float(fields[3]))
            except ValueError:
                return (
                    f"{path}: line {number} is malformed: {line.rstrip()[:80]!r}; expected "
                    f"4 fields separated by {sep!r}: user, item, rating, timestamp"
                )
    return f"{path}: could not be parsed as ratings"


def read_ratings(path: str | Path) -> pd.DataFrame:
    """Parse a MovieLens ratings file into the common schema.

    Recognises ``UserID::MovieID::Rating::Timestamp`` (ML-1M, ML-10M), tab-separated
    ``u.data`` (ML-100K) and ``userId,movieId,rating,timestamp`` CSV with a header
    (ML-20M, ML-25M, ml-latest) from the file's first line, and reads it with pandas' C
    parser (``::`` is read as ``:`` with the empty fields in between skipped).

    Returns:
        DataFrame with columns ``user_id, item_id, rating, timestamp`` (:data:`RATING_DTYPES`).

    Raises:
        FileNotFoundError: no such file.
        DataFormatError: a malformed line; the message names the file and the line number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ratings file")
    sep, header = _sniff(path)
    # "::" is two ':' around an empty field: read ':' with the C engine, keep every other column.
    c_sep, columns = (":", [0, 2, 4, 6]) if sep == "::" else (sep, [0, 1, 2, 3])
    try:
        frame = pd.read_csv(path, sep=c_sep, header=0 if header else None, engine="c",
                            dtype=np.float64)
    except (ValueError, pd.errors.ParserError):
        raise DataFormatError(_first_bad_line(path, sep, header)) from None
    if frame.shape[1] != columns[-1] + 1:  # a row with more fields than the first one
        raise DataFormatError(_first_bad_line(path, sep, header))
    frame = frame.iloc[:, columns]
    frame.columns = list(RATING_DTYPES)
    if frame.isna().to_numpy().any():
        raise DataFormatError(_first_bad_line(path, sep, header))
    return frame.astype(RATING_DTYPES)


def read_movies(folder: str | Path) -> pd.DataFrame | None:
    """Titles and genres from ``movies.dat``, ``u.item`` or ``movies.csv`` in ``folder``.

    Returns:
        DataFrame with columns ``item_id, title, genres`` (genres ``|``-separated), or
        ``None`` when the folder has no movies file.
    """
    folder = Path(folder)
    for name in MOVIES_FILES:
        path = folder / name
        if path.is_file():
            break
    else:
        return None
    if name == "movies.csv":
        movies = pd.read_csv(path, encoding="utf-8")
        movies.columns = ["item_id", "title", "genres"]
    elif name == "movies.dat":
        with open(path, encoding="latin-1") as f:
            rows = [line.rstrip("\r\n").split("::", 2) for line in f if line.strip()]
        movies = pd.DataFrame(rows, columns=["item_id", "title", "genres"])
    else:  # u.item: id|title|date|video date|url|19 genre flags
        genre_names = _ml100k_genres(folder)
        raw = pd.read_csv(path, sep="|", header=None, encoding="latin-1")
        flags = raw.iloc[:, 5:].to_numpy(dtype=bool)
        genres = ["|".join(g for g, on in zip(genre_names, row) if on) for row in flags]
        movies = pd.DataFrame({"item_id": raw[0], "title": raw[1], "genres": genres})
    movies["item_id"] = movies["item_id"].astype("int32")
    return movies


def _ml100k_genres(folder: Path) -> list[str]:
    path = folder / "u.genre"
    if path.is_file():
        with open(path, encoding="latin-1") as f:
            return [line.split("|")[0] for line in f if line.strip()]
    return [f"genre{i}" for i in range(19)]


def find_ratings_file(path: str | Path) -> Path:
    """The ratings file for a path: the file itself, or the one inside a MovieLens folder.

    A folder may hold ``ratings.dat``, ``u.data`` or ``ratings.csv`` directly or in one
    sub-folder (as when a zip was extracted into a folder of its own name).
    """
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for folder in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
            for name in RATINGS_FILES:
                if (folder / name).is_file():
                    return folder / name
        raise FileNotFoundError(
            f"{path}: no ratings file found; expected one of {', '.join(RATINGS_FILES)}"
        )
    raise FileNotFoundError(f"{path}: no such file or folder")


# --------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------


def synthetic_ratings(
    n_users: int = ML1M_SHAPE[0],
    n_items: int = ML1M_SHAPE[1],
    n_interactions: int = ML1M_SHAPE[2],
    *,
    rank: int = 8,
    taste: float = 4.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Generate MovieLens-like ratings that a recommender can learn from.

    * user activity is long-tailed (log-normal, at least ``min(20, mean / 2)`` per user, as
      MovieLens keeps only users with 20 ratings);
    * item popularity follows a Zipf-like law;
    * which items a user picks depends on a rank-``rank`` taste structure: user ``u`` picks
      item ``i`` with probability proportional to ``popularity_i * exp(taste * p_u . q_i)``
      (without replacement, via Gumbel top-k);
    * timestamps are real Unix times between 2000 and 2003, in an order unrelated to taste;
    * ratings 1-5 grow with the user's affinity for the item.

    The result has the schema of :func:`read_ratings` and is fully determined by ``seed``.
    Ids start at 1, like MovieLens.
    """
    if n_interactions > n_users * n_items // 2:
        raise ValueError(
            f"n_interactions={n_interactions:,} is more than half of users x items "
            f"({n_users:,} x {n_items:,}); expected a sparse matrix"
        )
    rng = np.random.default_rng(seed)
    low = max(2, min(20, n_interactions // (2 * n_users)))
    weights = rng.lognormal(0.0, 1.0, n_users)
    counts = low + np.floor(weights / weights.sum() * (n_interactions - low * n_users)).astype(int)
    counts = np.minimum(counts, n_items // 2)
    short = n_interactions - counts.sum()
    while short > 0:  # hand out what rounding and the cap left over, a few users at a time
        room = np.flatnonzero(counts < n_items // 2)
        extra = rng.choice(room, size=min(short, room.size), replace=False)
        counts[extra] += 1
        short -= extra.size

    log_pop = -0.9 * np.log1p(rng.permutation(n_items)).astype(np.float32)
    p = rng.normal(0, 1 / np.sqrt(rank), (n_users, rank)).astype(np.float32)
    q = rng.normal(0, 1 / np.sqrt(rank), (n_items, rank)).astype(np.float32)

    users, items, affinity = [], [], []
    chunk = max(1, 4_000_000 // n_items)
    for start in range(0, n_users, chunk):
        stop = min(start + chunk, n_users)
        aff = taste * (p[start:stop] @ q.T)
        gumbel = -np.log(-np.log(rng.random(aff.shape, dtype=np.float32) + 1e-12) + 1e-12)
        order = np.argsort(-(log_pop + aff + gumbel), axis=1)
        rows = np.repeat(np.arange(stop - start), counts[start:stop])
        cols = order[rows, _ranks_within(counts[start:stop])]
        users.append(rows + start)
        items.append(cols)
        affinity.append(aff[rows, cols])
    user = np.concatenate(users)
    item = np.concatenate(items)
    aff = np.concatenate(affinity)

    noisy = aff + rng.normal(0, 0.5, aff.size)
    rating = np.clip(np.digitize(noisy, np.quantile(noisy, [0.06, 0.17, 0.43, 0.78])) + 1, 1, 5)
    start_time = rng.integers(956_700_000, 1_046_400_000, n_users)  # 2000-04 .. 2003-02
    gaps = rng.exponential(3_600.0, user.size).astype(np.int64) + 1
    # Each user's items in a random order (unrelated to taste), one gap apart.
    order = np.lexsort((rng.random(user.size), user))
    running = np.cumsum(gaps[order])
    first = np.cumsum(counts) - counts
    clock = np.empty(user.size, dtype=np.int64)
    clock[order] = running - np.repeat(running[first] - gaps[order][first], counts)
    return pd.DataFrame(
        {"user_id": user + 1, "item_id": item + 1, "rating": rating,
         "timestamp": start_time[user] + clock}
    ).astype(RATING_DTYPES)


def _ranks_within(counts: np.ndarray) -> np.ndarray:
    """``0..c-1`` for each count ``c``, concatenated: ``[2, 3] -> [0, 1, 0, 1, 2]``."""
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(counts.sum()) - offsets


def synthetic_movies(item_ids: np.ndarray) -> pd.DataFrame:
    """Placeholder titles (``Synthetic movie 0042``) so recommendations print something."""
    return pd.DataFrame(
        {"item_id": item_ids.astype("int32"),
         "title": [f"Synthetic movie {i:04d}" for i in item_ids], "genres": ""}
    )


_SYNTHETIC = re.compile(r"^synthetic(?::(\d+)x(\d+)x(\d+))?$")


def load_ratings(
    dataset: str | Path = "ml-1m", data_dir: str | Path | None = None, *, seed: int = 0,
    progress: bool = True,
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
    """
    text = str(dataset)
    match = _SYNTHETIC.match(text)
    if match:
        shape = tuple(int(g) for g in match.groups()) if match.group(1) else ML1M_SHAPE
        ratings = synthetic_ratings(*shape, seed=seed)
        return Ratings(ratings, synthetic_movies(np.unique(ratings["item_id"])), text)
    if text in DATASETS:
        folder = fetch(text, data_dir, progress=progress)
    elif Path(text).exists():
        folder = None
    else:
        raise FileNotFoundError(
            f"--dataset {text!r} is neither a known dataset ({', '.join(DATASETS)}, synthetic, "
            "synthetic:USERSxITEMSxINTERACTIONS) nor an existing file or folder"
        )
    ratings_file = find_ratings_file(folder if folder is not None else text)
    return Ratings(read_ratings(ratings_file), read_movies(ratings_file.parent), text)


# --------------------------------------------------------------------------------------
# Re-indexing, split and candidates
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalSet:
    """Held-out items with their ranking candidates.

    Attributes:
        users: ``(n,)`` contiguous user ids.
        candidates: ``(n, 1 + num_ng_test)`` item ids; column 0 is the held-out item, the
            rest are items the user never interacted with.
    """

    users: np.ndarray
    candidates: np.ndarray

    @property
    def items(self) -> np.ndarray:
        """``(n,)`` the held-out item of each user."""
        return self.candidates[:, 0]


@dataclass(frozen=True)
class NCFData:
    """Everything a model needs: sizes, training positives, evaluation sets and id maps.

    Attributes:
        n_users, n_items: sizes of the contiguous id ranges.
        train_users, train_items: ``(n_train,)`` training positives sorted by user then item.
        train_keys: ``(n_train,)`` sorted ``user * n_items + item``, for vectorised
            membership tests (:meth:`is_train_positive`).
        validation: second-latest interaction of each user with at least 3, or ``None``
            when the split was made without validation.
        test: latest interaction of each user with at least 2.
        user_ids, item_ids: ``(n_users,)`` / ``(n_items,)`` original id of each contiguous id.
        titles: ``(n_items,)`` title of each item, or ``None``.
        name: where the data came from.
        seed: the seed the candidates were drawn with (to rebuild the same split).
    """

    n_users: int
    n_items: int
    train_users: np.ndarray
    train_items: np.ndarray
    train_keys: np.ndarray
    validation: EvalSet | None
    test: EvalSet
    user_ids: np.ndarray
    item_ids: np.ndarray
    titles: np.ndarray | None
    name: str
    seed: int

    @property
    def n_train(self) -> int:
        return int(self.train_users.size)

    @property
    def density(self) -> float:
        """Share of the user x item matrix with an interaction (train + held out)."""
        held = self.test.users.size + (0 if self.validation is None else self.validation.users.size)
        return (self.n_train + held) / (self.n_users * self.n_items)

    @cached_property
    def _train_matrix(self) -> np.ndarray | None:
        """Dense ``(n_users * n_items,)`` bool mask of training positives, when it is small."""
        if self.n_users * self.n_items > DENSE_MASK_LIMIT:
            return None
        mask = np.zeros(self.n_users * self.n_items, dtype=bool)
        mask[self.train_keys] = True
        return mask

    def is_train_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean mask, same shape as ``users``: is ``(user, item)`` a training positive?

        A dense lookup table when users x items fits in :data:`DENSE_MASK_LIMIT` bytes
        (MovieLens-1M: 22 MB), else a binary search in :attr:`train_keys`.
        """
        keys = users.astype(np.int64) * self.n_items + items
        dense = self._train_matrix
        return dense[keys] if dense is not None else _member(keys, self.train_keys)

    def train_pairs_of(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training positives of ``users`` as ``(row, item)`` index arrays.

        ``row`` indexes ``users`` (not the user id), so ``mask[train_pairs_of(users)] = True``
        marks a ``(len(users), n_items)`` matrix.
        """
        lo = np.searchsorted(self.train_users, users)
        hi = np.searchsorted(self.train_users, users + 1)
        return np.repeat(np.arange(users.size), hi - lo), self.train_items[_ranges(lo, hi)]


def reindex(ratings: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Map original user and item ids to contiguous ``0..n-1`` in increasing id order.

    Returns:
        ``users (n,)``, ``items (n,)`` contiguous ids as int64, and ``user_ids``,
        ``item_ids``: the original id of each contiguous id.
    """
    user_ids, users = np.unique(ratings["user_id"].to_numpy(), return_inverse=True)
    item_ids, items = np.unique(ratings["item_id"].to_numpy(), return_inverse=True)
    return users.astype(np.int64), items.astype(np.int64), user_ids, item_ids


def leave_one_out(
    users: np.ndarray, timestamps: np.ndarray, n_users: int, *, validation: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hold out each user's latest interaction for test (and second latest for validation).

    Interactions are ordered by timestamp; ties are broken by position in the file (a later
    row counts as later), so the split is deterministic. A user needs 2 interactions to be
    tested (one to train on, one to test) and 3 to also be validated. Users below that keep
    all their interactions in training and are left out of that evaluation (MovieLens has at
    least 20 ratings per user, so this never happens there).

    Returns:
        Row indices ``train (n_train,)``, ``val (n_val,)``, ``test (n_test,)``, each in user
        order; ``val`` is empty when ``validation`` is false.
    """
    n = users.size
    order = np.lexsort((np.arange(n), timestamps, users))
    counts = np.bincount(users, minlength=n_users)
    ends = np.cumsum(counts)
    test = order[ends[counts >= 2] - 1]
    val = order[ends[counts >= 3] - 2] if validation else np.empty(0, dtype=np.int64)
    keep = np.ones(n, dtype=bool)
    keep[test] = False
    keep[val] = False
    return np.flatnonzero(keep), val, test


def sample_candidates(
    users: np.ndarray, held_out: np.ndarray, interacted_keys: np.ndarray, n_items: int,
    num_ng_test: int, rng: np.random.Generator,
) -> np.ndarray:
    """Draw ``num_ng_test`` distinct items each user never interacted with.

    Exact uniform sampling without replacement: each user's items get uniform random
    scores, interacted items get +inf, and the ``num_ng_test`` smallest scores win
    (``argpartition`` over chunks of users, so memory stays bounded).

    Args:
        users: ``(n,)`` user ids, one row each.
        held_out: ``(n,)`` the held-out item of each row (column 0 of the result).
        interacted_keys: sorted ``user * n_items + item`` of all interactions of the users
            (train, validation and test), which are never candidates' negatives.
        n_items: number of items.
        num_ng_test: negatives per user (99 in the paper's protocol).
        rng: random generator.

    Returns:
        ``(n, 1 + num_ng_test)`` item ids, held-out item first.
    """
    out = np.empty((users.size, 1 + num_ng_test), dtype=np.int64)
    out[:, 0] = held_out
    chunk = max(1, (1 << 22) // max(n_items, 1))
    for start in range(0, users.size, chunk):
        block = users[start : start + chunk]
        scores = rng.random((block.size, n_items), dtype=np.float32)
        lo = np.searchsorted(interacted_keys, block * n_items)
        hi = np.searchsorted(interacted_keys, (block + 1) * n_items)
        n_pos = hi - lo
        if (n_items - n_pos < num_ng_test).any():
            bad = int(block[np.argmax(n_items - n_pos < num_ng_test)])
            raise ValueError(
                f"user {bad} has fewer than num_ng_test={num_ng_test} items they never "
                f"interacted with ({n_items} items in all); lower num_ng_test"
            )
        rows = np.repeat(np.arange(block.size), n_pos)
        cols = interacted_keys[_ranges(lo, hi)] - np.repeat(block, n_pos) * n_items
        scores[rows, cols] = np.inf
        out[start : start + block.size, 1:] = np.argpartition(scores, num_ng_test - 1, axis=1)[
            :, :num_ng_test
        ]
    return out


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(lo[i], hi[i])`` for all ``i``, without a Python loop."""
    lengths = hi - lo
    return np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())


def build_dataset(
    ratings: Ratings, *, num_ng_test: int = 99, validation: bool = True, seed: int = 42,
    timings: dict[str, float] | None = None,
) -> NCFData:
    """Re-index, split leave-one-out and draw the evaluation candidates.

    Args:
        ratings: from :func:`load_ratings`.
        num_ng_test: sampled negatives per held-out item (99: the paper ranks 100 items; the
            seed notebook used 100).
        validation: also hold out each user's second-latest interaction for model selection.
        seed: fixes the candidates.
        timings: if given, receives the seconds of each stage (``reindex``, ``split``,
            ``candidates``).
    """
    clock = time.perf_counter()
    frame = ratings.ratings
    users, items, user_ids, item_ids = reindex(frame)
    n_users, n_items = user_ids.size, item_ids.size
    mark = _lap(timings, "reindex", clock)
    train, val, test = leave_one_out(
        users, frame["timestamp"].to_numpy(), n_users, validation=validation
    )
    all_keys = _sorted_unique(users * n_items + items)
    # One training row per (user, item) pair, and never a held-out pair: with duplicate rows
    # in a file, the same pair could otherwise be both trained on and tested.
    held = _sorted_unique(users[held_out := np.concatenate([test, val])] * n_items
                          + items[held_out])
    train_keys = _sorted_unique(users[train] * n_items + items[train])
    train_keys = train_keys[~_member(train_keys, held)]
    mark = _lap(timings, "split", mark)
    rng = np.random.default_rng(seed)
    test_set = EvalSet(users[test], sample_candidates(
        users[test], items[test], all_keys, n_items, num_ng_test, rng))
    val_set = None
    if validation:
        val_set = EvalSet(users[val], sample_candidates(
            users[val], items[val], all_keys, n_items, num_ng_test, rng))
    _lap(timings, "candidates", mark)
    titles = None
    if ratings.movies is not None:
        lookup = ratings.movies.drop_duplicates("item_id").set_index("item_id")["title"]
        titles = lookup.reindex(item_ids).fillna("(unknown title)").to_numpy(dtype=object)
    return NCFData(
        n_users=int(n_users), n_items=int(n_items),
        train_users=train_keys // n_items, train_items=train_keys % n_items,
        train_keys=train_keys, validation=val_set, test=test_set,
        user_ids=user_ids, item_ids=item_ids, titles=titles, name=ratings.name, seed=seed,
    )


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` without its overhead for large int arrays)."""
    keys = np.sort(keys)
    keep = np.ones(keys.size, dtype=bool)
    keep[1:] = keys[1:] != keys[:-1]
    return keys[keep]


def _member(keys: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Boolean mask: which ``keys`` are in ``sorted_set`` (a sorted 1-D array)."""
    if sorted_set.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, keys), sorted_set.size - 1)
    return sorted_set[pos] == keys


def _lap(timings: dict[str, float] | None, stage: str, since: float) -> float:
    now = time.perf_counter()
    if timings is not None:
        timings[stage] = now - since
    return now


# --------------------------------------------------------------------------------------
# Training instances
# --------------------------------------------------------------------------------------


def _check_negatives_exist(data: NCFData) -> None:
    """A user who trained on every item has no negative to draw: say so instead of looping."""
    counts = np.bincount(data.train_users, minlength=data.n_users)
    if (counts >= data.n_items).any():
        raise ValueError(f"user {int(np.argmax(counts))} has interacted with every item; "
                         "no negative can be sampled")


def sample_negatives(data: NCFData, num_ng: int, rng: np.random.Generator) -> np.ndarray:
    """``num_ng`` negative items for every training positive, never a training positive.

    Items are drawn uniformly with replacement (as in the paper's code); draws that hit a
    training positive of that user are redrawn until none is left. Only training positives
    are excluded: the held-out items stay unknown to the model, as they would in use.

    Returns:
        ``(n_train * num_ng,)`` items; rows ``k * num_ng .. (k + 1) * num_ng - 1`` belong to
        training positive ``k``.
    """
    _check_negatives_exist(data)
    users = np.repeat(data.train_users, num_ng)
    items = rng.integers(0, data.n_items, users.size)
    todo = np.flatnonzero(data.is_train_positive(users, items))
    while todo.size:
        items[todo] = rng.integers(0, data.n_items, todo.size)
        todo = todo[data.is_train_positive(users[todo], items[todo])]
    return items


def epoch_arrays(
    data: NCFData, num_ng: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One epoch of training rows: every positive plus ``num_ng`` fresh negatives, shuffled.

    Call it once per epoch: the paper re-samples negatives every epoch (the seed notebook
    drew them once and reused them, which costs accuracy).

    Returns:
        ``users (n,)`` int64, ``items (n,)`` int64, ``labels (n,)`` float32 with
        ``n = n_train * (1 + num_ng)``.
    """
    negatives = sample_negatives(data, num_ng, rng)
    users = np.concatenate([data.train_users, np.repeat(data.train_users, num_ng)])
    items = np.concatenate([data.train_items, negatives])
    labels = np.zeros(users.size, dtype=np.float32)
    labels[: data.n_train] = 1.0
    order = rng.permutation(users.size)
    return (torch.from_numpy(users[order]), torch.from_numpy(items[order]),
            torch.from_numpy(labels[order]))


class DeviceSampler:
    """:func:`epoch_arrays` computed with torch on ``device``, for GPUs.

    On CUDA, drawing negatives on the host and copying ~5 M rows per epoch costs more than
    drawing them where the model is: this keeps the training positives and a membership
    table on the device and draws every epoch there (same rules: uniform with
    replacement, training positives redrawn, rows shuffled). The random stream is torch's,
    so results differ from the NumPy path's for the same seed; :func:`~ncf_lib.train.fit`
    uses it only on CUDA, so CPU runs are unchanged.

    Args:
        data: the dataset.
        num_ng: negatives per positive.
        seed: seeds the sampler's own generator.
        device: where to draw (any torch device; tests use the CPU).
    """

    def __init__(self, data: NCFData, num_ng: int, seed: int, device: torch.device | str
                 ) -> None:
        device = torch.device(device)
        _check_negatives_exist(data)
        self.num_ng, self.n_items, self.n_train = num_ng, data.n_items, data.n_train
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.users = torch.from_numpy(data.train_users).to(device, torch.int64)
        self.items = torch.from_numpy(data.train_items).to(device, torch.int64)
        self.keys = torch.from_numpy(data.train_keys).to(device, torch.int64)
        self.mask = None
        if data.n_users * data.n_items <= DENSE_MASK_LIMIT:
            self.mask = torch.zeros(data.n_users * data.n_items, dtype=torch.bool, device=device)
            self.mask[self.keys] = True

    def _is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        keys = users * self.n_items + items
        if self.mask is not None:
            return self.mask[keys]
        pos = torch.searchsorted(self.keys, keys).clamp_(max=self.keys.numel() - 1)
        return self.keys[pos] == keys

    def _randint(self, n: int) -> torch.Tensor:
        return torch.randint(self.n_items, (n,), generator=self.generator,
                             device=self.users.device)

    def epoch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One epoch's shuffled ``users, items, labels`` (``(n,)`` each), on the device."""
        neg_users = self.users.repeat_interleave(self.num_ng)
        negatives = self._randint(neg_users.numel())
        todo = torch.nonzero(self._is_positive(neg_users, negatives)).squeeze(1)
        while todo.numel():
            negatives[todo] = self._randint(todo.numel())
            todo = todo[self._is_positive(neg_users[todo], negatives[todo])]
        users = torch.cat([self.users, neg_users])
        items = torch.cat([self.items, negatives])
        labels = torch.zeros(users.numel(), device=users.device)
        labels[: self.n_train] = 1.0
        order = torch.randperm(users.numel(), generator=self.generator, device=users.device)
        return users[order], items[order], labels[order]


def batches(*tensors: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Consecutive ``batch_size`` slices of equally long tensors (the last one may be shorter)."""
    n = tensors[0].shape[0]
    for start in range(0, n, batch_size):
        yield tuple(t[start : start + batch_size] for t in tensors)
