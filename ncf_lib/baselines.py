"""Baselines beside NCF: popularity, random, item-based kNN, and the tuned MF recipe.

All are scorers with the models' interface, ``scorer(users (n,), items (n, c)) -> (n, c)``,
so the same metrics rank them. Each tuned setting is chosen on the validation items.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ncf_lib.dataset import NCFData
from ncf_lib.errors import ConfigError, DataError
from ncf_lib.metrics import evaluate
from ncf_lib.models import ModelConfig
from ncf_lib.train import FitResult, TrainConfig, train_model

#: L2 weights tried for MF; the one with the best validation HR is kept.
MF_L2_GRID = (0.0, 1e-4, 1e-3)
#: Neighbours tried for ItemKNN; the one with the best validation HR is kept.
KNN_K_GRID = (10, 20, 50, 100, 200, 400)


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
            raise ConfigError(f"ItemKNN needs k >= 1 and shrink >= 0, got k={k}, shrink={shrink}")
        if data.n_items > KNN_MAX_ITEMS:
            raise DataError(
                f"ItemKNN keeps a dense item x item matrix: {data.n_items:,} "
                f"items is more than {KNN_MAX_ITEMS:,}"
            )
        history = torch.zeros(data.n_users, data.n_items)
        history[
            torch.from_numpy(data.train_users).long(), torch.from_numpy(data.train_items).long()
        ] = 1.0
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


def tune_itemknn(data: NCFData, grid: tuple[int, ...] | None = None, k: int = 10) -> int:
    """ItemKNN's number of neighbours with the best validation HR@k among ``grid`` (default
    :data:`KNN_K_GRID`), from one similarity matrix for the whole grid."""
    grid = tuple(n for n in grid or KNN_K_GRID if n < data.n_items) or (data.n_items - 1,)
    every = ItemKNNScorer.fit(data, k=data.n_items)
    hr = {n: evaluate(every.neighbours(n), data.validation, k)["hr"] for n in grid}
    return max(grid, key=lambda n: hr[n])


def tune_mf(
    data: NCFData,
    config: TrainConfig,
    model_config: ModelConfig = ModelConfig(),
    grid: tuple[float, ...] | None = None,
) -> tuple[float, FitResult]:
    """MF (Rendle et al. 2020) trained once per L2 weight of ``grid`` (default
    :data:`MF_L2_GRID`): the weight with the best validation HR, and its fit (the first
    weight wins ties)."""
    if data.validation is None:
        raise ConfigError("tuning MF needs data built with validation=True")
    grid = grid or MF_L2_GRID
    fits = {l2: train_model("mf", data, replace(config, l2=l2), model_config) for l2 in grid}
    best = max(grid, key=lambda l2: fits[l2].best["val_hr"])
    return best, fits[best]
