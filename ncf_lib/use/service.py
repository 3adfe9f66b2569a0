"""What a recommendation service answers, without the web framework: a trained model and
its data loaded once, and one method per request (:mod:`ncf_lib.use.server` puts them behind
HTTP). Original ids and titles in, original ids and titles out.

::

    service = Service.load("checkpoints/ml-100k-neumf.pt")
    service.for_user("1", k=10)                       # a known user, history excluded
    service.for_new_user(["Toy Story (1995)"], k=10)  # folded in from liked movies
    service.similar("1", k=10)                        # closest items
    service.search("star wars")                       # titles for the demo page
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ncf_lib.checkpoints import Checkpoint, check_same_data, load_checkpoint
from ncf_lib.dataset import NCFData, build_dataset
from ncf_lib.errors import ConfigError, UnknownIdError
from ncf_lib.ratings import load_ratings
from ncf_lib.scale.candidates import large_catalogue_candidates
from ncf_lib.scale.parse_cache import read_ratings_cached
from ncf_lib.use.foldin import FoldInConfig, fold_in
from ncf_lib.use.index import build_index, dot_product_vectors, top_k_excluding
from ncf_lib.use.recommend import recommend
from ncf_lib.use.similar import similar_items
from ncf_lib.use.titles import match_title

#: The most movies one request may ask for, and the most liked movies a new user may give.
MAX_K, MAX_LIKED = 100, 50


def checkpoint_and_data(
    path: str | Path,
    dataset: str | None = None,
    data_dir: str | None = None,
    ckpt: Checkpoint | None = None,
) -> tuple[Checkpoint, NCFData]:
    """A checkpoint (loaded here unless given) and the data it was trained on (its own
    dataset unless ``dataset``), rebuilt with its split and verified against the
    checkpoint's fingerprint."""
    ckpt = ckpt or load_checkpoint(path)
    ratings = load_ratings(dataset or ckpt.dataset, data_dir, read=read_ratings_cached)
    data = build_dataset(ratings, **ckpt.data, draw=large_catalogue_candidates)
    check_same_data(path, ckpt.fingerprint, data)
    return ckpt, data


@dataclass
class Service:
    """A model and its data, and the answers to each kind of request.

    Attributes:
        model: the trained model (eval mode).
        data: the data it was trained on (ids, titles, each user's history).
        about: what is served, for the page and ``/health`` (model, epoch, dataset).
        index: ``exact``, ``flat`` or ``hnsw`` to answer known users from an inner-product
            index (MF and GMF only, :mod:`ncf_lib.use.index`); ``None``: the model scores
            every item, as ``recommend`` does.
        fold: how a new user is folded in.
    """

    model: object
    data: NCFData
    about: dict
    index: str | None = None
    fold: FoldInConfig = field(default_factory=FoldInConfig)

    def __post_init__(self) -> None:
        self.model.eval()
        self._folding = threading.Lock()  # one fold-in at a time: several only contend
        self._index = self._vectors = None
        if self.index is not None:
            self._vectors, items = dot_product_vectors(self.model)
            self._index = build_index(items, self.index)

    @classmethod
    def load(
        cls, path: str | Path, dataset: str | None = None, data_dir: str | None = None, **kw
    ) -> Service:
        """Load ``path`` once, with its data verified (:func:`checkpoint_and_data`)."""
        ckpt, data = checkpoint_and_data(path, dataset, data_dir)
        about = {
            "model": type(ckpt.model).__name__,
            "epoch": ckpt.epoch,
            "dataset": Path(str(data.name)).name,
            "users": data.n_users,
            "items": data.n_items,
            "titles": data.titles is not None,
            "index": kw.get("index") or "none",
        }
        return cls(ckpt.model, data, about, **kw)

    def movie(self, item: int, score: float | None = None) -> dict:
        """``{"item_id", "title", "score"}`` of a contiguous item id (title ``None`` without
        titles)."""
        title = None if self.data.titles is None else str(self.data.titles[item])
        return {"item_id": str(self.data.item_ids[item]), "title": title, "score": score}

    def _item(self, text: str) -> int:
        """An item by its original id, else by its exact title."""
        try:
            return self.data.item_index(text, what="movie")
        except UnknownIdError:
            if self.data.titles is None:
                raise UnknownIdError(f"movie {text} is not in {self.about['dataset']}") from None
        try:
            return match_title(text, self.data.titles, self.data.item_ids)
        except UnknownIdError as err:
            raise UnknownIdError(f"{err} (nor is it a movie id)") from None

    def for_user(self, user_id: str, k: int = 10) -> list[dict]:
        """A known user's top ``k``, the movies they rated excluded."""
        _check_k(k)
        try:
            user = self.data.user_index(user_id)
        except UnknownIdError:  # named by the dataset's name, not the server's folders
            raise UnknownIdError(
                f"user {user_id} is not in {self.about['dataset']} ({self.data.n_users:,} "
                f"users, ids from {self.data.user_ids.min()} to {self.data.user_ids.max()})"
            ) from None
        history = self.data.user_history(user)
        if self._index is not None:
            items, scores = top_k_excluding(self._index, self._vectors[user], k, history)
        else:
            items, scores = recommend(self.model, user, k, exclude=history, name=f"user {user_id}")
        return [self.movie(i, float(s)) for i, s in zip(items, scores)]

    def for_new_user(self, liked: list[str], k: int = 10) -> tuple[list[dict], list[dict]]:
        """``(the liked movies found, the top k)`` of a new user folded in from ``liked``
        (original ids or exact titles), as ``recommend --like`` answers. Fold-ins run one at a
        time (requests from several threads queue): run together they only fight for the
        cores, and each takes longer."""
        _check_k(k)
        if not 1 <= len(liked) <= MAX_LIKED:
            raise ConfigError(f"give 1 to {MAX_LIKED} liked movies, got {len(liked)}")
        history = np.unique([self._item(text) for text in liked])
        with self._folding:
            model = fold_in(self.model, [history], self.fold)
        items, scores = recommend(model, 0, k, exclude=history, name="the new user")
        return [self.movie(i) for i in history], [
            self.movie(i, float(s)) for i, s in zip(items, scores)
        ]

    def similar(self, item_id: str, k: int = 10) -> tuple[dict, list[dict]]:
        """``(the movie, its k closest)`` by the cosine of the model's item vectors."""
        _check_k(k)
        item = self._item(item_id)
        items, cosines = similar_items(self.model, item, k, ids=self.data.item_ids)
        return self.movie(item), [self.movie(i, float(c)) for i, c in zip(items, cosines)]

    def search(self, query: str, limit: int = 10) -> list[dict]:
        """Movies whose title holds every word of ``query`` (case ignored), or whose id is
        ``query``; the shortest titles first."""
        _check_k(limit)
        words = query.casefold().split()
        if not words:
            return []
        ids = self.data.item_ids.astype(str)
        if self.data.titles is None:
            return [self.movie(i) for i in np.flatnonzero(ids == query.strip())[:limit]]
        titles = np.char.lower(self.data.titles.astype(str))
        hit = np.ones(titles.size, dtype=bool)
        for word in words:
            hit &= np.char.find(titles, word) >= 0
        hit |= ids == query.strip()
        found = np.flatnonzero(hit)
        found = found[np.argsort(np.char.str_len(titles[found]), kind="stable")]
        return [self.movie(i) for i in found[:limit]]


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise ConfigError(f"k must be 1 to {MAX_K}, got {k}")
