"""Baselines beside NCF: item-based kNN, EASE, PureSVD, iALS, tuned MF (popularity and
random scores, the references, are :mod:`ncf_lib.metrics`'s).

All are scorers with the models' interface, ``scorer(users (n,), items (n, c)) -> (n, c)``,
so the same metrics rank them. Each tuned setting is chosen on the validation items.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from ncf_lib.dataset import NCFData
from ncf_lib.errors import ConfigError, DataError
from ncf_lib.metrics import (
    PopularityScorer,
    RandomScorer,
    Scorer,
    evaluate,
    full_ranking_metrics,
)
from ncf_lib.models import ModelConfig
from ncf_lib.train import FitResult, TrainConfig, train_model

#: L2 weights tried for MF; the one with the best validation HR is kept.
MF_L2_GRID = (0.0, 1e-4, 1e-3)
#: Neighbours tried for ItemKNN; the one with the best validation HR is kept.
KNN_K_GRID = (10, 20, 50, 100, 200, 400)
#: L2 weights tried for EASE (Steck 2019 uses 500 on ML-20M).
EASE_L2_GRID = (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)
#: Ranks tried for PureSVD.
SVD_RANK_GRID = (5, 10, 20, 50, 100, 200)
#: iALS settings tried, every combination: factors, L2 weight, and the weight of an
#: observed pair relative to an unobserved one (``alpha``; the unobserved weight of Rendle
#: et al. 2022 is ``1 / alpha`` with the L2 weight divided by ``alpha``).
IALS_GRID = {"factors": (16, 32, 64), "l2": (1.0, 10.0, 50.0), "alpha": (2.0, 5.0, 20.0)}


def against_references(model: Scorer, data: NCFData, k: int = 10, seed: int = 0) -> pd.DataFrame:
    """Sampled and full-ranking HR@k / NDCG@k of ``model``, popularity and random scores
    (seeded by ``seed``), on the validation (where the data has it) and test items.

    Returns:
        One row per scorer and split: ``scorer, split, hr, ndcg, full_hr, full_ndcg``; the
        test items are ranked with the validation items excluded.
    """
    scorers = {
        "model": model,
        "popularity": PopularityScorer.fit(data),
        "random": RandomScorer(seed),
    }
    rows = []
    for name, scorer in scorers.items():
        for split, eval_set in (("validation", data.validation), ("test", data.test)):
            if eval_set is not None:
                exclude = data.validation if split == "test" else None
                full = full_ranking_metrics(scorer, data, eval_set, k, exclude=exclude)
                sampled = evaluate(scorer, eval_set, k)
                rows.append({"scorer": name, "split": split, **sampled,
                             "full_hr": full["hr"], "full_ndcg": full["ndcg"]})  # fmt: skip
    return pd.DataFrame(rows)


#: Largest catalogue for the dense item x item matrices of ItemKNN, EASE and PureSVD.
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
        history = _history(data).float()
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


def _history(data: NCFData) -> torch.Tensor:
    """``(n_users, n_items)`` float64, 1 where the user trained on the item."""
    if data.n_items > KNN_MAX_ITEMS:
        raise DataError(
            f"this baseline keeps a dense item x item matrix: {data.n_items:,} items is "
            f"more than {KNN_MAX_ITEMS:,}"
        )
    history = torch.zeros(data.n_users, data.n_items, dtype=torch.float64)
    users, items = torch.from_numpy(data.train_users), torch.from_numpy(data.train_items)
    history[users.long(), items.long()] = 1.0
    return history


@dataclass(frozen=True)
class ItemMatrixScorer:
    """``score(u, i) = (x_u B)_i`` for a user's ``(n_items,)`` training row ``x_u`` and an
    item x item matrix ``B``: the form of EASE and PureSVD."""

    history: torch.Tensor
    weights: torch.Tensor

    def __call__(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        scores = self.history[users.cpu()] @ self.weights  # (n, n_items)
        return scores.gather(1, items.cpu()).to(items.device)


def ease(data: NCFData, l2: float = 500.0) -> ItemMatrixScorer:
    """EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019):
    ``B = argmin ||X - XB||^2 + l2 ||B||^2`` with ``diag(B) = 0``, in closed form
    ``P = (X'X + l2 I)^-1``, ``B = -P / diag(P)`` column by column, ``diag(B) = 0``."""
    if l2 <= 0:
        raise ConfigError(f"EASE needs an L2 weight above 0, got {l2}")
    history = _history(data)
    gram = history.T @ history + l2 * torch.eye(data.n_items, dtype=torch.float64)
    precision = torch.linalg.inv(gram)
    weights = -precision / precision.diagonal()[None, :]
    weights.fill_diagonal_(0.0)
    return ItemMatrixScorer(history, weights)


@dataclass(frozen=True)
class PureSVD:
    """PureSVD (Cremonesi et al., RecSys 2010): the truncated SVD ``X ~ U S V'`` of the
    binary user x item matrix, ``score = x_u V_f V_f'``; one SVD serves every rank."""

    history: torch.Tensor
    right: torch.Tensor  # (n_items, min(n_users, n_items)) right singular vectors

    @classmethod
    def fit(cls, data: NCFData) -> PureSVD:
        history = _history(data)
        return cls(history, torch.linalg.svd(history, full_matrices=False).Vh.T)

    def rank(self, f: int) -> ItemMatrixScorer:
        """The scorer with the ``f`` leading singular vectors."""
        v = self.right[:, :f]
        return ItemMatrixScorer(self.history, v @ v.T)


@dataclass(frozen=True)
class FactorScorer:
    """``score(u, i) = p_u . q_i`` from ``(n_users, f)`` user and ``(n_items, f)`` item
    factors (iALS)."""

    users: torch.Tensor
    items: torch.Tensor

    def __call__(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        scores = self.users[users.cpu()] @ self.items.T  # (n, n_items)
        return scores.gather(1, items.cpu()).to(items.device)


@dataclass(frozen=True)
class IALSConfig:
    """Settings of :func:`ials` (see :data:`IALS_GRID`)."""

    factors: int = 64
    l2: float = 1.0
    alpha: float = 5.0
    iterations: int = 15
    seed: int = 0

    def __str__(self) -> str:
        return f"factors={self.factors} l2={self.l2:g} alpha={self.alpha:g}"


def ials(data: NCFData, config: IALSConfig = IALSConfig()) -> FactorScorer:
    """Implicit alternating least squares (Hu, Koren & Volinsky, ICDM 2008), fitted by the
    ``implicit`` package (exact least squares each step, float64). Every (user, item) pair
    is a target, 1 for a training positive and 0 otherwise, weighted ``alpha`` for a
    positive and 1 for the rest, with ``l2 (||P||^2 + ||Q||^2)``."""
    if config.factors < 1 or config.l2 < 0 or config.alpha <= 0 or config.iterations < 1:
        raise ConfigError(f"iALS needs factors, iterations >= 1, l2 >= 0, alpha > 0: {config}")
    from implicit.cpu.als import AlternatingLeastSquares
    from scipy.sparse import csr_matrix
    from threadpoolctl import threadpool_limits

    history = csr_matrix(
        (np.ones(data.n_train), (data.train_users, data.train_items)),
        shape=(data.n_users, data.n_items),
    )
    with threadpool_limits(1, "blas"):  # implicit runs its own threads (one per core)
        model = AlternatingLeastSquares(
            factors=config.factors,
            regularization=config.l2,
            alpha=config.alpha,
            dtype=np.float64,
            use_cg=False,
            iterations=config.iterations,
            num_threads=torch.get_num_threads(),
            random_state=config.seed,
        )
        model.fit(history, show_progress=False)
    return FactorScorer(torch.from_numpy(model.user_factors), torch.from_numpy(model.item_factors))


def tune_ials(data: NCFData, grid: dict | None = None, seed: int = 0, k: int = 10) -> IALSConfig:
    """The iALS setting with the best validation HR@k among every combination of ``grid``
    (default :data:`IALS_GRID`)."""
    grid = grid or IALS_GRID
    configs = [
        IALSConfig(f, l2, alpha, seed=seed)
        for f in grid["factors"]
        for l2 in grid["l2"]
        for alpha in grid["alpha"]
    ]
    return _best_on_validation(data, {c: ials(data, c) for c in configs}, k)


def _best_on_validation(data: NCFData, scorers: dict, k: int):
    if data.validation is None:
        raise ConfigError("tuning a baseline needs data built with validation=True")
    hr = {key: evaluate(scorer, data.validation, k)["hr"] for key, scorer in scorers.items()}
    return max(scorers, key=lambda key: hr[key])  # the first wins ties


def tune_ease(data: NCFData, grid: tuple[float, ...] | None = None, k: int = 10) -> float:
    """EASE's L2 weight with the best validation HR@k among ``grid`` (default
    :data:`EASE_L2_GRID`)."""
    return _best_on_validation(data, {l2: ease(data, l2) for l2 in grid or EASE_L2_GRID}, k)


def tune_puresvd(data: NCFData, grid: tuple[int, ...] | None = None, k: int = 10) -> int:
    """PureSVD's rank with the best validation HR@k among ``grid`` (default
    :data:`SVD_RANK_GRID`), from one SVD."""
    svd = PureSVD.fit(data)
    limit = min(data.n_users, data.n_items)
    grid = tuple(f for f in grid or SVD_RANK_GRID if f <= limit) or (limit,)
    return _best_on_validation(data, {f: svd.rank(f) for f in grid}, k)


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
