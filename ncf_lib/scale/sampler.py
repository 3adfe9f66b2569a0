"""Negatives drawn with torch where the model is: the sampler of CUDA runs."""

from __future__ import annotations

import torch

from ncf_lib.dataset import DENSE_MASK_LIMIT, NCFData
from ncf_lib.sampling import check_negatives_exist


class TorchSampler:
    """:func:`~ncf_lib.sampling.epoch_arrays` computed with torch on ``device``, for GPUs.

    On CUDA, drawing negatives on the host and copying ~5 M rows per epoch costs more than
    drawing them where the model is: this keeps the training positives and a membership
    table on the device and draws every epoch there (same rules: uniform with
    replacement, training positives redrawn, rows shuffled). The random stream is torch's,
    so results differ from :class:`~ncf_lib.sampling.NegativeSampler`'s for the same seed
    (:func:`ncf_lib.scale.fit_options` uses it on CUDA only, so CPU runs are unchanged).

    Args:
        data: the dataset.
        num_ng: negatives per positive.
        seed: seeds the sampler's own generator.
        device: where to draw (any torch device; tests use the CPU).
    """

    kind = "torch"

    def __init__(self, data: NCFData, num_ng: int, seed: int, device: torch.device | str) -> None:
        device = torch.device(device)
        check_negatives_exist(data)
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

    def state(self) -> torch.Tensor:
        """The generator's state, to continue the same stream later."""
        return self.generator.get_state().cpu()

    def load_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state.to(self.generator.device))
