"""Ranking metrics: HR@K and NDCG@K, on sampled candidates or on the full item set.

Everything is defined by the **rank** of the held-out item among the items it competes with
(0 = first). With one relevant item per user:

* ``HR@K   = mean(rank < K)``
* ``NDCG@K = mean(1 / log2(rank + 2) if rank < K else 0)`` (log base 2: rank 0 scores 1)

**Ties count against the held-out item** (pessimistic): its rank is the number of other
candidates scoring *at least* as high. A model that gives every item the same score ranks
the held-out item last, not first (the seed's ``torch.topk`` order, and several ports'
"positive first" layouts, give such a model a perfect score).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ncf_lib.data import EvalSet, NCFData

#: ``scorer(users (n,), items (n, c)) -> scores (n, c)``; higher is better.
Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _nan_last(scores: torch.Tensor) -> torch.Tensor:
    """NaN scores (a diverged model) as the lowest possible: a NaN never compares greater,
    so left as it is a NaN held-out item would rank first."""
    return scores.nan_to_num(nan=-torch.inf)


def rank_of_first(scores: torch.Tensor) -> torch.Tensor:
    """``(n,)`` rank of column 0 within each row of ``(n, c)`` scores, ties (and NaN, as
    the lowest score) counted against it."""
    scores = _nan_last(scores)
    return (scores[:, 1:] >= scores[:, :1]).sum(dim=1)


def hit_rate(ranks: torch.Tensor, k: int) -> float:
    """Share of held-out items ranked in the top ``k``."""
    return float((ranks < k).double().mean())


def _gains(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """``(n,)`` NDCG@k of each user: ``1 / log2(rank + 2)`` inside the top ``k``, else 0."""
    gains = 1.0 / torch.log2(ranks.double() + 2.0)
    return torch.where(ranks < k, gains, torch.zeros_like(gains))


def ndcg(ranks: torch.Tensor, k: int) -> float:
    """Mean NDCG@k with one relevant item: ``1 / log2(rank + 2)`` inside the top ``k``."""
    return float(_gains(ranks, k).mean())


def standard_errors(ranks: torch.Tensor, k: int) -> dict[str, float]:
    """Standard errors over users of HR@k and NDCG@k (``std / sqrt(users)``): how far the
    metrics of the same model would move on another test set of the same size, or with
    other sampled negatives. With MovieLens-100K's 943 users that is about 0.015 for HR@10,
    more than the spread between seeds on one fixed test set."""
    n = ranks.numel()
    return {"hr": float((ranks < k).double().std() / n ** 0.5),
            "ndcg": float(_gains(ranks, k).std() / n ** 0.5)}


def sampled_metrics(scores: torch.Tensor, k: int = 10) -> dict[str, float]:
    """HR@k and NDCG@k from a ``(users, candidates)`` matrix whose column 0 is held out."""
    ranks = rank_of_first(scores)
    return {"hr": hit_rate(ranks, k), "ndcg": ndcg(ranks, k)}


@torch.inference_mode()
def score_candidates(scorer: Scorer, eval_set: EvalSet, *, chunk: int = 2048,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """``(n, c)`` scores of an evaluation set's candidates, ``chunk`` users at a time."""
    users = torch.from_numpy(eval_set.users).to(device)
    items = torch.from_numpy(eval_set.candidates).to(device)
    return torch.cat([scorer(users[s : s + chunk], items[s : s + chunk])
                      for s in range(0, users.shape[0], chunk)]).float().cpu()


def evaluate(scorer: Scorer, eval_set: EvalSet, k: int = 10, *,
             device: torch.device | str = "cpu") -> dict[str, float]:
    """Sampled HR@k and NDCG@k of a scorer on an evaluation set (the paper's protocol)."""
    return sampled_metrics(score_candidates(scorer, eval_set, device=device), k)


@torch.inference_mode()
def full_ranking_metrics(scorer: Scorer, data: NCFData, eval_set: EvalSet, k: int = 10, *,
                         exclude: EvalSet | None = None, chunk: int = 512,
                         device: torch.device | str = "cpu") -> dict[str, float]:
    """HR@k, NDCG@k and Recall@k ranking the held-out item against **all** items.

    Items the user trained on are excluded (they would otherwise crowd the top and HR
    collapses to a few per cent), as are the held-out items of ``exclude`` (pass the
    validation set when evaluating on test: those interactions are known too). With one
    held-out item per user, Recall@k (hits / min(k, relevant)) equals HR@k.
    """
    all_items = torch.arange(data.n_items, device=device)
    ranks = []
    for start in range(0, eval_set.users.size, chunk):
        users_np = eval_set.users[start : start + chunk]
        users = torch.from_numpy(users_np).to(device)
        scores = _nan_last(scorer(users, all_items.expand(users.shape[0], -1)).float())
        known = torch.from_numpy(_known_mask(data, users_np, exclude)).to(device)
        held = torch.from_numpy(eval_set.items[start : start + chunk]).to(device)
        target = scores.gather(1, held[:, None])
        beats = (scores >= target) & ~known
        beats.scatter_(1, held[:, None], False)
        ranks.append(beats.sum(dim=1).cpu())
    rank = torch.cat(ranks)
    hr = hit_rate(rank, k)
    return {"hr": hr, "ndcg": ndcg(rank, k), "recall": hr}


def _known_mask(data: NCFData, users: np.ndarray, exclude: EvalSet | None) -> np.ndarray:
    """``(len(users), n_items)`` bool: training items (and ``exclude``'s held-out item)."""
    mask = np.zeros((users.size, data.n_items), dtype=bool)
    mask[data.train_pairs_of(users)] = True
    if exclude is not None:
        where = np.searchsorted(exclude.users, users)
        where = np.minimum(where, exclude.users.size - 1)
        has = exclude.users[where] == users
        mask[np.flatnonzero(has), exclude.items[where[has]]] = True
    return mask


# --------------------------------------------------------------------------------------
# Reference scorers
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PopularityScorer:
    """Scores an item by how many users trained on it (ItemPop), the same for every user."""

    counts: torch.Tensor

    @classmethod
    def fit(cls, data: NCFData) -> PopularityScorer:
        return cls(torch.from_numpy(np.bincount(data.train_items, minlength=data.n_items)
                                    ).double())

    def __call__(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.counts.to(items.device)[items]


@dataclass(frozen=True)
class RandomScorer:
    """Uniform random scores (expected HR@10 with 100 candidates: 0.10)."""

    seed: int = 0

    def __call__(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        return torch.rand(items.shape, generator=gen, dtype=torch.float64).to(items.device)


#: Largest catalogue for :class:`ItemKNNScorer`'s dense item x item similarity (2 GiB).
KNN_MAX_ITEMS = 23_000


@dataclass(frozen=True)
class ItemKNNScorer:
    """Item-based k-nearest neighbours with cosine similarity, the classic baseline.

    ``score(u, i) = sum of sim(j, i) over the user's training items j``, where
    ``sim(j, i) = |U_j ∩ U_i| / (sqrt(|U_j| |U_i|) + shrink)`` on the binary user x item
    matrix and each item keeps only its ``k`` most similar neighbours (Sarwar et al. 2001;
    Dacrema et al. 2019 find it within a few points of NeuMF on MovieLens-1M). No training
    loop: one sparse product, so it fits in seconds.

    Attributes:
        history: ``(n_users, n_items)`` float32, 1 where the user trained on the item.
        similarity: ``(n_items, n_items)`` float32, row ``j`` holds ``sim(j, .)`` for the
            ``k`` nearest neighbours of each column item, 0 elsewhere and on the diagonal.
    """

    history: torch.Tensor
    similarity: torch.Tensor

    @classmethod
    def fit(cls, data: NCFData, k: int = 100, shrink: float = 0.0) -> ItemKNNScorer:
        """Similarities from ``data``'s training positives, ``k`` neighbours per item."""
        if k < 1 or shrink < 0:
            raise ValueError(f"ItemKNN needs k >= 1 and shrink >= 0, got k={k}, shrink={shrink}")
        if data.n_items > KNN_MAX_ITEMS:
            raise ValueError(f"ItemKNN keeps a dense item x item matrix: {data.n_items:,} "
                             f"items is more than {KNN_MAX_ITEMS:,}")
        history = torch.zeros(data.n_users, data.n_items)
        history[torch.from_numpy(data.train_users).long(),
                torch.from_numpy(data.train_items).long()] = 1.0
        co = history.T @ history  # (items, items) co-counts
        norms = co.diagonal().sqrt()
        sim = co / (norms[:, None] * norms[None, :] + shrink).clamp_min(1e-12)
        sim.fill_diagonal_(0.0)
        return cls(history, sim).neighbours(k)

    def neighbours(self, k: int) -> ItemKNNScorer:
        """The same scorer keeping only each item's (column's) ``k`` largest similarities:
        tune ``k`` from one :meth:`fit` with many neighbours without recomputing them."""
        if k >= self.similarity.shape[0]:
            return self
        top = self.similarity.topk(k, dim=0).indices
        kept = torch.zeros_like(self.similarity).scatter_(0, top, self.similarity.gather(0, top))
        return ItemKNNScorer(self.history, kept)

    def __call__(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        scores = self.history[users.cpu()] @ self.similarity  # (n, n_items)
        return scores.gather(1, items.cpu()).to(items.device)
