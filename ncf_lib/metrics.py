"""Ranking metrics: HR@K and NDCG@K, on sampled candidates or on the full item set.

Everything is defined by the **rank** of the held-out item among the items it competes with
(0 = first). With one relevant item per user:

* ``HR@K   = mean(rank < K)``
* ``NDCG@K = mean(1 / log2(rank + 2) if rank < K else 0)`` (log base 2: rank 0 scores 1)

**Ties count against the held-out item** (pessimistic): its rank is the number of other
candidates scoring *at least* as high. A model that gives every item the same score ranks
the held-out item last, not first (``torch.topk``'s order and "positive first" layouts give
it a perfect score).

The references every model is read against, popularity (:class:`PopularityScorer`) and
random scores (:class:`RandomScorer`), are scorers here too; :func:`per_user_ranks` keeps each
user's ranks for a closer look.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ncf_lib.dataset import EvalSet, NCFData
from ncf_lib.errors import ConfigError, NonFiniteScoresError

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
    same model's metrics move on another test set of the same size (MovieLens-100K, HR@10:
    about 0.015, more than the spread between seeds)."""
    n = ranks.numel()
    return {
        "hr": float((ranks < k).double().std() / n**0.5),
        "ndcg": float(_gains(ranks, k).std() / n**0.5),
    }


def sampled_metrics(scores: torch.Tensor, k: int = 10) -> dict[str, float]:
    """HR@k and NDCG@k from a ``(users, candidates)`` matrix whose column 0 is held out."""
    ranks = rank_of_first(scores)
    return {"hr": hit_rate(ranks, k), "ndcg": ndcg(ranks, k)}


@torch.inference_mode()
def score_candidates(
    scorer: Scorer, eval_set: EvalSet, *, chunk: int = 2048, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``(n, c)`` scores of an evaluation set's candidates, ``chunk`` users at a time."""
    users = torch.from_numpy(eval_set.users).to(device)
    items = torch.from_numpy(eval_set.candidates).to(device)
    parts = [
        scorer(users[s : s + chunk], items[s : s + chunk]) for s in range(0, len(users), chunk)
    ]
    return torch.cat(parts).float().cpu()


def evaluate(
    scorer: Scorer, eval_set: EvalSet, k: int = 10, *, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Sampled HR@k and NDCG@k of a scorer on an evaluation set (the paper's protocol).

    Raises:
        ConfigError: ``k`` is not below the number of candidates (HR would be 1).
        NonFiniteScoresError: a score is NaN or infinite.
    """
    check_top_k(k, eval_set.candidates.shape[1], "candidates per user")
    ranks = sampled_ranks(scorer, eval_set, device=device)
    return {"hr": hit_rate(ranks, k), "ndcg": ndcg(ranks, k)}


def sampled_ranks(
    scorer: Scorer, eval_set: EvalSet, *, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``(n,)`` rank of each held-out item among its candidates.

    Raises:
        NonFiniteScoresError: a score is NaN or infinite.
    """
    scores = score_candidates(scorer, eval_set, device=device)
    _check_finite(scores)
    return rank_of_first(scores)


def check_top_k(k: int, n: int, what: str) -> None:
    if not 1 <= k < n:
        raise ConfigError(
            f"top_k (--top-k) must be at least 1 and below the {n} {what}, got {k}: "
            "otherwise every held-out item is (or none is) in the top k"
        )


def _check_finite(scores: torch.Tensor) -> None:
    bad = ~torch.isfinite(scores).all(dim=1)
    if bad.any():
        raise NonFiniteScoresError(
            f"the model scores NaN or infinity for {int(bad.sum())} of {bad.numel()} users "
            "(its weights are not finite: a diverged or damaged model); metrics of such "
            "scores would mean nothing"
        )


#: User-item pairs scored at once by :func:`full_ranks` (about 500 users of MovieLens-1M).
FULL_RANKING_PAIRS = 1 << 21


def full_ranking_metrics(
    scorer: Scorer,
    data: NCFData,
    eval_set: EvalSet,
    k: int = 10,
    *,
    exclude: EvalSet | None = None,
    chunk: int | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """HR@k, NDCG@k and Recall@k (equal to HR@k: one held-out item) ranking the held-out
    item against **all** items but the user's training items and ``exclude``'s held-out
    item (pass the validation set when evaluating on test: it is known too)."""
    check_top_k(k, data.n_items, "items")
    rank = full_ranks(scorer, data, eval_set, exclude=exclude, chunk=chunk, device=device)
    hr = hit_rate(rank, k)
    return {"hr": hr, "ndcg": ndcg(rank, k), "recall": hr}


@torch.inference_mode()
def full_ranks(
    scorer: Scorer,
    data: NCFData,
    eval_set: EvalSet,
    *,
    exclude: EvalSet | None = None,
    chunk: int | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``(n,)`` rank of each held-out item among the items :func:`full_ranking_metrics`
    ranks, ``chunk`` users at a time (default: :data:`FULL_RANKING_PAIRS` pairs)."""
    chunk = chunk or max(1, FULL_RANKING_PAIRS // data.n_items)
    all_items = torch.arange(data.n_items, device=device)
    ranks = []
    for start in range(0, eval_set.users.size, chunk):
        some = eval_set.users[start : start + chunk]
        scores = scorer(torch.from_numpy(some).to(device), all_items.expand(some.size, -1)).float()
        _check_finite(scores)
        known = torch.from_numpy(_known_mask(data, some, exclude)).to(device)
        held = torch.from_numpy(eval_set.items[start : start + chunk]).to(device)
        target = scores.gather(1, held[:, None])
        beats = (scores >= target) & ~known
        beats.scatter_(1, held[:, None], False)
        ranks.append(beats.sum(dim=1).cpu())
    return torch.cat(ranks)


def _known_mask(data: NCFData, users: np.ndarray, exclude: EvalSet | None) -> np.ndarray:
    """``(len(users), n_items)`` bool: training items (and ``exclude``'s held-out item)."""
    mask = np.zeros((users.size, data.n_items), dtype=bool)
    mask[data.train_pairs_of(users)] = True
    if exclude is not None:
        where = np.minimum(np.searchsorted(exclude.users, users), exclude.users.size - 1)
        has = exclude.users[where] == users
        mask[np.flatnonzero(has), exclude.items[where[has]]] = True
    return mask


#: The columns of :func:`per_user_ranks`, in order.
PER_USER_COLUMNS = ("user_id", "split", "item_id", "rank", "full_rank")


def per_user_ranks(scorer: Scorer, data: NCFData) -> pd.DataFrame:
    """One row per held-out item: ``user_id, split, item_id, rank, full_rank`` (original
    ids; 0-based ranks among the sampled candidates and among every item the user did not
    train on, as :func:`evaluate` and :func:`full_ranking_metrics` count them)."""
    frames = []
    for split, eval_set in (("validation", data.validation), ("test", data.test)):
        if eval_set is not None:
            exclude = data.validation if split == "test" else None
            frames.append(
                pd.DataFrame(
                    {
                        "user_id": data.user_ids[eval_set.users],
                        "split": split,
                        "item_id": data.item_ids[eval_set.items],
                        "rank": sampled_ranks(scorer, eval_set).numpy(),
                        "full_rank": full_ranks(scorer, data, eval_set, exclude=exclude).numpy(),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)[list(PER_USER_COLUMNS)]


@dataclass(frozen=True)
class PopularityScorer:
    """Scores an item by how many users trained on it (ItemPop), the same for every user."""

    counts: torch.Tensor

    @classmethod
    def fit(cls, data: NCFData) -> PopularityScorer:
        return cls(torch.from_numpy(np.bincount(data.train_items, minlength=data.n_items)).double())

    def __call__(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.counts.to(items.device)[items]


@dataclass(frozen=True)
class RandomScorer:
    """Uniform random scores (expected HR@10 with 100 candidates: 0.10)."""

    seed: int = 0

    def __call__(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        return torch.rand(items.shape, generator=gen, dtype=torch.float64).to(items.device)
