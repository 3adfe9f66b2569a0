"""Training instances: fresh negatives every epoch, shuffled, in batches.

::

    epoch_arrays(data, num_ng=4, rng)             -> shuffled (users, items, labels) tensors
    TorchSampler(data, 4, seed, "cuda").epoch()   -> the same, drawn with torch on a device
    batches(*tensors, batch_size=256)             -> slices of those tensors
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ncf_lib.dataset import DENSE_MASK_LIMIT, NCFData
from ncf_lib.errors import DataError


def _check_negatives_exist(data: NCFData) -> None:
    """A user who trained on every item has no negative to draw: say so instead of looping."""
    counts = np.bincount(data.train_users, minlength=data.n_users)
    if (counts >= data.n_items).any():
        raise DataError(
            f"user {int(np.argmax(counts))} has interacted with every item; "
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


class TorchSampler:
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

    def __init__(self, data: NCFData, num_ng: int, seed: int, device: torch.device | str) -> None:
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
        return torch.randint(self.n_items, (n,), generator=self.generator, device=self.users.device)

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
