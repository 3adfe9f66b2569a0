"""Recommendations for users the model never saw: fold them in from a few liked items.

A trained model has one embedding row (or two, for NeuMF; a bias too, for MF) per training
user, and nothing for anyone else. *Folding in* learns those rows for new users with every
item-side parameter (item tables, MLP tower, prediction layer) frozen: a few epochs of the
usual loss on the new users' liked items as positives and sampled unseen items as
negatives. It is cheap (only the new rows change) and it needs no re-training.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from torch import nn

from ncf_lib.dataset import EvalSet, NCFData
from ncf_lib.errors import ConfigError, UnknownIdError
from ncf_lib.metrics import evaluate, full_ranking_metrics
from ncf_lib.models import ModelConfig, Recommender, embedding
from ncf_lib.train import TrainConfig, train_model


@dataclass(frozen=True)
class FoldInConfig:
    """How new users are folded in.

    Attributes:
        epochs: passes over the liked items (each with fresh negatives).
        num_ng: sampled negatives per liked item, re-drawn every epoch.
        lr: Adam learning rate of the new rows.
        seed: seeds the initial rows and the negatives.
    """

    epochs: int = 50
    num_ng: int = 4
    lr: float = 0.01
    seed: int = 0


def user_tables(model: nn.Module) -> list[str]:
    """Names of the model's user-side embedding tables (``*user*``), e.g. NeuMF's two."""
    return [
        name for name, m in model.named_children() if isinstance(m, nn.Embedding) and "user" in name
    ]


def fold_in(
    model: Recommender, liked: Sequence[np.ndarray], config: FoldInConfig = FoldInConfig()
) -> Recommender:
    """A copy of ``model`` whose users are ``len(liked)`` new ones, learned from ``liked``.

    Args:
        model: a trained GMF, MLP, NeuMF or MF (any model whose user-side parameters are
            embedding tables named ``*user*``).
        liked: for each new user, the contiguous item ids they liked, ``(n_liked,)``.
        config: epochs, negatives, learning rate and seed.

    Returns:
        The copy (in eval mode): user ``j`` of it is ``liked[j]``'s user; the item side is
        exactly ``model``'s.
    """
    tables = user_tables(model)
    if not tables:
        raise ConfigError(f"{type(model).__name__} has no user embedding table to fold in")
    for row, items in enumerate(liked):
        items = np.asarray(items)
        if items.size == 0:
            raise ConfigError(f"new user {row} likes no item; fold-in needs at least one")
        if items.min() < 0 or items.max() >= model.n_items:
            raise UnknownIdError(f"new user {row}: an item id is outside 0..{model.n_items - 1}")
    if max(len(np.unique(items)) for items in liked) >= model.n_items:
        raise ConfigError("a new user likes every item: there is nothing left to recommend")
    device = next(model.parameters()).device
    new = copy.deepcopy(model).to(device)
    new.requires_grad_(False)
    torch.manual_seed(config.seed)
    for name in tables:
        old = getattr(model, name)
        table = embedding(len(liked), old.embedding_dim).to(device)
        if old.embedding_dim == 1:  # a bias: start at zero, as a fresh model does
            nn.init.zeros_(table.weight)
        setattr(new, name, table)
    new.n_users = len(liked)
    users = np.concatenate([np.full(len(items), j) for j, items in enumerate(liked)])
    items = np.concatenate([np.asarray(items) for items in liked]).astype(np.int64)
    taken = np.zeros((len(liked), model.n_items), dtype=bool)
    taken[users, items] = True
    rng = np.random.default_rng(config.seed)
    optimizer = torch.optim.Adam([p for p in new.parameters() if p.requires_grad], lr=config.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    new.train()
    for _ in range(config.epochs):
        neg_users = np.repeat(users, config.num_ng)
        negatives = rng.integers(0, model.n_items, neg_users.size)
        while (bad := taken[neg_users, negatives]).any():  # never a liked item
            negatives[bad] = rng.integers(0, model.n_items, int(bad.sum()))
        u = torch.from_numpy(np.concatenate([users, neg_users])).to(device)
        i = torch.from_numpy(np.concatenate([items, negatives])).to(device)
        labels = torch.cat([torch.ones(users.size), torch.zeros(neg_users.size)]).to(device)
        optimizer.zero_grad()
        loss_fn(new(u, i), labels).backward()
        optimizer.step()
    return new.eval()


def folded_scorer(folded: Recommender, users: np.ndarray):
    """A scorer over the original contiguous user ids ``users`` for a model folded in from
    them (row ``j`` of ``folded`` is user ``users[j]``), for :mod:`ncf_lib.metrics`."""
    index = torch.full((int(users.max()) + 1,), -1, dtype=torch.int64)
    index[torch.from_numpy(users)] = torch.arange(users.size)

    def score(batch_users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return folded.score(index.to(batch_users.device)[batch_users], items)

    return score


def held_out_users_study(
    data: NCFData,
    model_name: str,
    train_config: TrainConfig,
    model_config: ModelConfig = ModelConfig(),
    *,
    share: float = 0.1,
    fold: FoldInConfig = FoldInConfig(),
    k: int = 10,
) -> pd.DataFrame:
    """How well fold-in serves users the model never saw, against training them normally.

    A random ``share`` of the users (seeded by ``fold.seed``) is removed from training; a
    model trained on the others folds each of them in from their training items, and
    their test items are ranked (sampled candidates and full ranking). The same users'
    numbers from a model trained on everyone, with the same settings, are the reference.

    Returns:
        Rows ``trained normally`` and ``folded in``; columns HR@k, NDCG@k (sampled) and
        full-ranking HR@k, NDCG@k, over the held-out users only.
    """
    rng = np.random.default_rng(fold.seed)
    tested = data.test.users
    held = np.sort(rng.choice(tested, size=max(1, int(round(share * tested.size))), replace=False))
    keep = ~np.isin(data.train_users, held)
    without = replace(
        data,
        train_users=data.train_users[keep],
        train_items=data.train_items[keep],
        train_keys=data.train_keys[keep],
        validation=_users(data.validation, held, keep=False),
        test=_users(data.test, held, keep=False),
    )
    test = _users(data.test, held)
    liked = [data.train_items[data.train_users == u] for u in held]
    normal = train_model(model_name, data, train_config, model_config).model
    partial = train_model(model_name, without, train_config, model_config).model
    folded = folded_scorer(fold_in(partial, liked, fold), held)
    rows = {}
    for label, scorer in (("trained normally", normal.score), ("folded in", folded)):
        sampled = evaluate(scorer, test, k)
        full = full_ranking_metrics(scorer, data, test, k, exclude=data.validation)
        rows[label] = {
            f"HR@{k}": sampled["hr"],
            f"NDCG@{k}": sampled["ndcg"],
            f"full HR@{k}": full["hr"],
            f"full NDCG@{k}": full["ndcg"],
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(
        f"{model_name}, {held.size} held-out users"
    )


def _users(eval_set: EvalSet | None, users: np.ndarray, *, keep: bool = True) -> EvalSet | None:
    """The rows of ``eval_set`` whose user is (``keep``) or is not in ``users``."""
    if eval_set is None:
        return None
    rows = np.isin(eval_set.users, users) == keep
    return EvalSet(eval_set.users[rows], eval_set.candidates[rows])
