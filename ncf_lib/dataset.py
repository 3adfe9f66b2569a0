"""The leave-one-out split: contiguous ids, training positives, held-out items, candidates
(:func:`build_dataset`). Every rating is a positive interaction (implicit feedback, as in
the paper); the candidates are drawn from ``build_dataset``'s seed."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ncf_lib.errors import ConfigError, DataError, UnknownIdError
from ncf_lib.ratings import Ratings

#: Largest users x items for which membership tests use a dense bool table (bytes).
DENSE_MASK_LIMIT = 1 << 28


#: The largest seed (every generator a run seeds takes 32 bits: NumPy's legacy one).
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class EvalSet:
    """Held-out items with their ranking candidates.

    Attributes:
        users: ``(n,)`` contiguous user ids.
        candidates: ``(n, 1 + num_ng_test)`` item ids: the held-out item, then items the
            user never interacted with.
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
        validation: second-latest interaction of each user with 3 or more (or ``None``).
        test: latest interaction of each user with 2 or more.
        user_ids, item_ids: ``(n_users,)`` / ``(n_items,)`` original id of each contiguous id.
        titles: ``(n_items,)`` title of each item, or ``None``.
        name: where the data came from.
        seed: the candidates' seed.
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
        """``(n_users * n_items,)`` bool mask of training positives, when it is small."""
        if self.n_users * self.n_items > DENSE_MASK_LIMIT:
            return None
        mask = np.zeros(self.n_users * self.n_items, dtype=bool)
        mask[self.train_keys] = True
        return mask

    @cached_property
    def fingerprint(self) -> dict:
        """:func:`fingerprint_of` this data, computed once."""
        return fingerprint_of(self)

    def is_train_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Is ``(user, item)`` a training positive? (a mask shaped as ``users``; a dense table
        up to :data:`DENSE_MASK_LIMIT` bytes, MovieLens-1M's 22 MB, else a binary search)"""
        keys = users.astype(np.int64) * self.n_items + items
        dense = self._train_matrix
        return dense[keys] if dense is not None else _member(keys, self.train_keys)

    def train_pairs_of(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training positives of ``users`` as ``(row, item)``, ``row`` indexing ``users``:
        ``mask[train_pairs_of(users)] = True`` marks a ``(len(users), n_items)`` matrix."""
        lo = np.searchsorted(self.train_users, users)
        hi = np.searchsorted(self.train_users, users + 1)
        return np.repeat(np.arange(users.size), hi - lo), self.train_items[_ranges(lo, hi)]

    def user_index(self, user: str | int, what: str = "user") -> int:
        """The contiguous id of an original user id; :class:`UnknownIdError` (starting with
        ``what``, a flag, say, and giving the ids' range) when there is none."""
        where = _position(self.user_ids, user)
        if where is None:
            raise UnknownIdError(
                f"{what} {user} is not in {self.name} (its user ids run from "
                f"{self.user_ids[0]} to {self.user_ids[-1]})"
            )
        return where

    def item_index(self, item: str | int, what: str = "item id") -> int:
        """The contiguous id of an original item id (:class:`UnknownIdError`: none)."""
        where = _position(self.item_ids, item)
        if where is None:
            raise UnknownIdError(f"{what} {item} is not in {self.name}")
        return where

    def user_history(self, user: int) -> np.ndarray:
        """``(n,)`` every item a contiguous user id interacted with: training positives,
        then the validation and test items."""
        lo, hi = np.searchsorted(self.train_users, [user, user + 1])
        held = [s.items[s.users == user] for s in (self.validation, self.test) if s is not None]
        return np.concatenate([self.train_items[lo:hi], *held])


def _position(ids: np.ndarray, text: str | int) -> int | None:
    """Where the original id ``text`` is in the sorted ``ids``, or ``None``."""
    key: str | int = str(text)
    if ids.dtype.kind in "iu":
        try:
            key = int(text)
        except ValueError:
            return None
    where = int(np.searchsorted(ids, key))
    return where if where < ids.size and ids[where] == key else None


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
    users: np.ndarray,
    held_out: np.ndarray,
    interacted_keys: np.ndarray,
    n_items: int,
    num_ng_test: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw ``num_ng_test`` distinct items each user never interacted with: uniform random
    scores, +inf for the user's own items, the ``num_ng_test`` smallest (chunks of users
    keep memory bounded). ``users (n,)`` and ``held_out (n,)`` give one row each;
    ``interacted_keys`` are the sorted ``user * n_items + item`` of every interaction.

    Returns:
        ``(n, 1 + num_ng_test)`` item ids, held-out item first.
    """
    out = np.empty((users.size, 1 + num_ng_test), dtype=np.int64)
    out[:, 0] = held_out
    chunk = max(1, (1 << 22) // max(n_items, 1))
    for start in range(0, users.size, chunk):
        block = users[start : start + chunk]
        scores = rng.random((block.size, n_items), dtype=np.float32)
        rows, items = interacted_cells(block, interacted_keys, n_items)
        if (n_items - np.bincount(rows, minlength=block.size) < num_ng_test).any():
            raise DataError(f"a user has fewer than num_ng_test={num_ng_test} unseen items")
        scores[rows, items] = np.inf
        smallest = np.argpartition(scores, num_ng_test - 1, axis=1)[:, :num_ng_test]
        out[start : start + block.size, 1:] = smallest
    return out


def interacted_cells(
    users: np.ndarray, interacted_keys: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, items)``: for each interaction of ``users (n,)``, the row of its user in
    ``users`` and its item, found in the sorted ``user * n_items + item`` keys."""
    lo = np.searchsorted(interacted_keys, users * n_items)
    hi = np.searchsorted(interacted_keys, (users + 1) * n_items)
    rows = np.repeat(np.arange(users.size), hi - lo)
    return rows, interacted_keys[_ranges(lo, hi)] % n_items


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(lo[i], hi[i])`` for all ``i``, without a Python loop."""
    lengths = hi - lo
    return np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())


def build_dataset(
    ratings: Ratings,
    *,
    num_ng_test: int = 99,
    validation: bool = True,
    seed: int = 42,
    timings: dict[str, float] | None = None,
    split: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]] = leave_one_out,
    draw: Callable[..., np.ndarray] = sample_candidates,
) -> NCFData:
    """Re-index, split leave-one-out and draw the evaluation candidates.

    Args:
        ratings: from :func:`load_ratings`.
        num_ng_test: sampled negatives per held-out item (the paper ranks 100 items).
        validation: also hold out each user's second-latest interaction for model selection.
        seed: fixes the candidates.
        timings: receives the seconds of ``reindex``, ``split`` and ``candidates``.
        split: called as :func:`leave_one_out` is.
        draw: called as :func:`sample_candidates` is (on large catalogues,
            :func:`ncf_lib.scale.candidates.large_catalogue_candidates`).
    """
    if num_ng_test < 1:
        raise ConfigError(
            f"num_ng_test (--num-ng-test) must be at least 1, got {num_ng_test}: with no "
            "sampled negatives the held-out item is always first and HR is 1"
        )
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed (--seed) must be an integer from 0 to 2**32 - 1, got {seed}")
    clock = time.perf_counter()
    frame = ratings.ratings
    if frame.empty:
        raise DataError(f"{ratings.name}: no ratings")
    users, items, user_ids, item_ids = reindex(frame)
    n_users, n_items = user_ids.size, item_ids.size
    mark = _lap(timings, "reindex", clock)
    train, val, test = split(users, frame["timestamp"].to_numpy(), n_users, validation=validation)
    all_keys = _sorted_unique(users * n_items + items)
    # One training row per (user, item) pair, and never a held-out pair: with duplicate rows
    # in a file, the same pair could otherwise be both trained on and tested.
    held_out = np.concatenate([test, val])
    held = _sorted_unique(users[held_out] * n_items + items[held_out])
    train_keys = _sorted_unique(users[train] * n_items + items[train])
    train_keys = train_keys[~_member(train_keys, held)]
    _check_split(ratings.name, test, val, train_keys, validation)
    unseen = n_items - np.bincount(all_keys // n_items, minlength=n_users)[users[test]]
    if (unseen < num_ng_test).any():
        worst = int(users[test][np.argmin(unseen)])
        raise DataError(
            f"{ratings.name}: user {user_ids[worst]} never interacted with only "
            f"{int(unseen.min())} of the {n_items} items, fewer than num_ng_test "
            f"(--num-ng-test) {num_ng_test}; lower it"
        )
    mark = _lap(timings, "split", mark)
    rng = np.random.default_rng(seed)

    def held_out_set(rows: np.ndarray) -> EvalSet:
        pool = draw(users[rows], items[rows], all_keys, n_items, num_ng_test, rng)
        return EvalSet(users[rows], pool)

    test_set = held_out_set(test)  # drawn first: the same test candidates without validation
    val_set = held_out_set(val) if validation else None
    _lap(timings, "candidates", mark)
    titles = None
    if ratings.movies is not None:
        lookup = ratings.movies.drop_duplicates("item_id").set_index("item_id")["title"]
        keys = item_ids
        if lookup.index.dtype.kind != item_ids.dtype.kind:  # ids of one kind, names of the other
            lookup.index, keys = lookup.index.astype(str), item_ids.astype(str)
        titles = lookup.reindex(keys).fillna("(unknown title)").to_numpy(dtype=object)
    return NCFData(
        n_users=int(n_users),
        n_items=int(n_items),
        train_users=train_keys // n_items,
        train_items=train_keys % n_items,
        train_keys=train_keys,
        validation=val_set,
        test=test_set,
        user_ids=user_ids,
        item_ids=item_ids,
        titles=titles,
        name=ratings.name,
        seed=seed,
    )


def _check_split(name, test, val, train_keys, validation: bool) -> None:
    """Refuse a split that cannot train or evaluate anything, saying why."""
    if test.size == 0:
        raise DataError(f"{name}: no user has 2 ratings; leave-one-out needs 2 to test a user")
    if validation and val.size == 0:
        raise DataError(
            f"{name}: no user has 3 ratings, so there are no validation items; select the "
            "epoch on the test items instead (train --select-on test; validation=False)"
        )
    if train_keys.size == 0:
        raise DataError(f"{name}: nothing is left to train on once the held-out items are out")


def fingerprint_of(data: NCFData) -> dict:
    """What a model trained on ``data`` depends on: sizes, and SHA-256 digests (16 hex digits)
    of the id maps and of the split (training pairs, every candidate): what the data is, not
    the name or path it was loaded by. Other ratings, other ids, another seed or
    ``num_ng_test`` give another fingerprint."""
    ids = hashlib.sha256()
    for original in (data.user_ids, data.item_ids):
        ids.update("\x1f".join(map(str, original.tolist())).encode() + b"\x1e")
    split = hashlib.sha256(np.ascontiguousarray(data.train_keys, dtype=np.int64).tobytes())
    for eval_set in (data.validation, data.test):
        if eval_set is not None:
            split.update(np.ascontiguousarray(eval_set.candidates, dtype=np.int64).tobytes())
    return {
        "users": data.n_users,
        "items": data.n_items,
        "train": data.n_train,
        "ids": ids.hexdigest()[:16],
        "split": split.hexdigest()[:16],
    }


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` without its overhead)."""
    keys = np.sort(keys)
    keep = np.ones(keys.size, dtype=bool)
    keep[1:] = keys[1:] != keys[:-1]
    return keys[keep]


def _member(keys: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which ``keys`` are in the sorted 1-D ``sorted_set``."""
    if sorted_set.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, keys), sorted_set.size - 1)
    return sorted_set[pos] == keys


def _lap(timings: dict[str, float] | None, stage: str, since: float) -> float:
    now = time.perf_counter()
    if timings is not None:
        timings[stage] = now - since
    return now
