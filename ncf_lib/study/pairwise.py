"""Pairwise training with the BPR loss (Rendle et al., UAI 2009), through
:func:`~ncf_lib.train.fit`'s ``make_sampler`` and ``train_epoch`` arguments.

Cross-entropy (the paper's loss) asks each score to say whether one item is a positive;
BPR asks only that a user's positive outrank a negative: ``-log sigmoid(x_ui - x_uj)`` for
a training positive ``i`` and an item ``j`` the user did not train on, which is what
HR and NDCG reward. ::

    fit(model, data, replace(config, num_ng=1),
        make_sampler=PairSampler, train_epoch=bpr_train_epoch)
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ncf_lib.dataset import NCFData
from ncf_lib.sampling import NegativeSampler, sample_negatives
from ncf_lib.train import add_l2_grad_


def pair_arrays(
    data: NCFData, num_ng: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One epoch of triples: every training positive with ``num_ng`` fresh negatives
    (:func:`~ncf_lib.sampling.sample_negatives`: never a training positive), shuffled.

    Returns:
        ``users (n,)``, ``positives (n,)``, ``negatives (n,)``, int64, ``n = n_train * num_ng``.
    """
    negatives = sample_negatives(data, num_ng, rng)
    users = np.repeat(data.train_users, num_ng)
    positives = np.repeat(data.train_items, num_ng)
    order = rng.permutation(users.size)
    return tuple(torch.from_numpy(a[order].astype(np.int64)) for a in (users, positives, negatives))


class PairSampler(NegativeSampler):
    """:func:`pair_arrays` from a generator of its own, for ``fit``'s ``make_sampler``: its
    ``epoch()`` gives ``(users, positives, negatives)`` where the cross-entropy sampler gives
    ``(users, items, labels)``; its state is saved and restored as that one's."""

    kind = "pairs"

    def epoch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(t.to(self.device) for t in pair_arrays(self.data, self.num_ng, self.rng))


def bpr_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Mean of ``-log sigmoid(positive - negative)`` over ``(batch,)`` logits (stable form)."""
    return -F.logsigmoid(positive - negative).mean()


def bpr_train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    *,
    l2: float = 0.0,
) -> float:
    """One pass over an epoch's ``(users, positives, negatives)`` batches; returns the mean
    BPR loss. ``l2`` weighs the squares of the embedding rows each triple uses (the user's
    once, both items')."""
    model.train()
    total, rows = 0.0, 0
    for users, positives, negatives in batches:
        optimizer.zero_grad()
        n = users.shape[0]
        logits = model(torch.cat([users, users]), torch.cat([positives, negatives]))  # one pass
        loss = bpr_loss(logits[:n], logits[n:])
        loss.backward()
        if l2:
            add_l2_grad_(model, users, positives, l2 / n)
            add_l2_grad_(model, users[:0], negatives, l2 / n)  # the items' rows only
        optimizer.step()
        total += loss.detach() * n
        rows += n
    return float(total) / rows
