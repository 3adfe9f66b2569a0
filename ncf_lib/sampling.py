"""Training instances: fresh negatives every epoch, shuffled, in batches.

::

    epoch_arrays(data, num_ng=4, rng)             -> shuffled (users, items, labels) tensors
    NegativeSampler(data, 4, seed).epoch()        -> the same, from a generator of its own
    batches(*tensors, batch_size=256)             -> slices of those tensors
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import torch

from ncf_lib.dataset import NCFData
from ncf_lib.errors import DataError


def check_negatives_exist(data: NCFData) -> None:
    """A user who trained on every item has no negative to draw: say so instead of looping."""
    counts = np.bincount(data.train_users, minlength=data.n_users)
    if (counts >= data.n_items).any():
        raise DataError(
            f"user {data.user_ids[int(np.argmax(counts))]} has interacted with every item; "
            "no negative can be sampled"
        )


def sample_negatives(data: NCFData, num_ng: int, rng: np.random.Generator) -> np.ndarray:
    """``num_ng`` negative items for every training positive, never a training positive.

    Items are drawn uniformly with replacement (as in the paper's code); draws that hit a
    training positive of that user are redrawn until none is left. Only training positives
    are excluded: the held-out items stay unknown to the model, as they would in use.

    Returns:
        ``(n_train * num_ng,)`` items; rows ``k * num_ng .. (k + 1) * num_ng - 1`` belong to
        training positive ``k``.
    """
    check_negatives_exist(data)
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

    Call it once per epoch: the paper re-samples negatives every epoch (negatives drawn once
    and reused cost accuracy).

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
    return (
        torch.from_numpy(users[order]),
        torch.from_numpy(items[order]),
        torch.from_numpy(labels[order]),
    )


class NegativeSampler:
    """:func:`epoch_arrays` from a generator of its own seeded with ``seed``, moved to
    ``device``: what :func:`ncf_lib.train.fit` draws from, its state saved in checkpoints."""

    kind = "numpy"

    def __init__(self, data: NCFData, num_ng: int, seed: int, device: torch.device | str = "cpu"):
        self.data, self.num_ng, self.device = data, num_ng, torch.device(device)
        self.rng = np.random.default_rng(seed)

    def epoch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One epoch's shuffled ``users, items, labels`` (``(n,)`` each)."""
        return tuple(t.to(self.device) for t in epoch_arrays(self.data, self.num_ng, self.rng))

    def state(self) -> str:
        """The generator's state (JSON), to continue the same stream later."""
        return json.dumps(self.rng.bit_generator.state)

    def load_state(self, state: str) -> None:
        self.rng.bit_generator.state = json.loads(state)


def batches(*tensors: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Consecutive ``batch_size`` slices of equally long tensors (the last one may be shorter)."""
    n = tensors[0].shape[0]
    for start in range(0, n, batch_size):
        yield tuple(t[start : start + batch_size] for t in tensors)
