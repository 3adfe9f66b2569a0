"""A row-sparse Adam for large catalogues (``TrainConfig(optimizer="sparse-adam")``, trained
through :func:`ncf_lib.scale.fit_options`: :func:`make_optimizer` and :func:`train_epoch`).

Dense Adam updates every row of every embedding table at every step (a row a batch did not
use still moves, driven by its momentum), so a step costs time proportional to the tables:
on MovieLens-20M-sized tables that is most of an epoch. :class:`SparseRowAdam` updates only
the rows a batch uses, with PyTorch's own :class:`torch.optim.SparseAdam` on sparse
embedding gradients, and Adam for the other layers. It is a different optimiser (Adam's
moments of a row advance only when the row is used, like ``LazyAdam`` in tensorflow/addons,
``tensorflow_addons/optimizers/lazy_adam.py``), so its numbers differ from dense Adam's;
``benchmarks/large_batch.py`` with ``:sparse`` settings measures by how much
(``benchmarks/results/sparse-adam-ml-100k.md``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ncf_lib import train
from ncf_lib.train import TrainConfig


class SparseRowAdam:
    """``torch.optim.SparseAdam`` for every embedding table, ``torch.optim.Adam`` for the
    rest, stepped together.

    Switches the model's tables to sparse gradients (``nn.Embedding.sparse = True``): the
    gradient of a table is then ``(batch,)`` row indices with ``(batch, dim)`` values, and
    only those rows (and their moments) change at a step.
    """

    def __init__(self, model: nn.Module, lr: float) -> None:
        tables = [m for m in model.modules() if isinstance(m, nn.Embedding)]
        for table in tables:
            table.sparse = True
        sparse = {id(table.weight) for table in tables}
        rest = [p for p in model.parameters() if id(p) not in sparse]
        self.sparse = torch.optim.SparseAdam([t.weight for t in tables], lr=lr)
        self.dense = torch.optim.Adam(rest, lr=lr, fused=True) if rest else None

    @property
    def _parts(self) -> list[torch.optim.Optimizer]:
        return [self.sparse] + ([self.dense] if self.dense is not None else [])

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self._parts:
            part.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for part in self._parts:
            part.step()

    def state_dict(self) -> dict:
        return {
            "sparse": self.sparse.state_dict(),
            "dense": [p.state_dict() for p in self._parts[1:]],
        }

    def load_state_dict(self, state: dict) -> None:
        self.sparse.load_state_dict(state["sparse"])
        for part, saved in zip(self._parts[1:], state["dense"]):
            part.load_state_dict(saved)


def make_optimizer(model: nn.Module, config: TrainConfig):
    """:class:`SparseRowAdam` for ``sparse-adam``, else :func:`ncf_lib.train.make_optimizer`."""
    if config.optimizer == "sparse-adam":
        return SparseRowAdam(model, config.lr)
    return train.make_optimizer(model, config)


def add_l2_grad_(model: nn.Module, users: torch.Tensor, items: torch.Tensor, weight: float) -> None:
    """:func:`ncf_lib.train.add_l2_grad_` for tables with sparse gradients too: for those the
    penalty's ``2 * weight * row`` per use joins the gradient as more ``(index, row)`` pairs;
    a dense table gets the core's update."""
    with torch.no_grad():
        for table, ids in train.lookups(model, users, items):
            weights = table.weight
            if weights.grad.is_sparse:
                penalty = torch.sparse_coo_tensor(
                    ids[None], 2 * weight * weights[ids], weights.shape, check_invariants=False
                )
                weights.grad = weights.grad + penalty
            else:
                weights.grad.index_add_(0, ids, weights[ids], alpha=2 * weight)


def train_epoch(
    model: nn.Module,
    optimizer: SparseRowAdam,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    *,
    l2: float = 0.0,
) -> float:
    """:func:`ncf_lib.train.train_epoch` for :class:`SparseRowAdam`, whose tables have
    sparse gradients: the same steps, with :func:`add_l2_grad_` for ``l2``."""
    if not l2:
        return train.train_epoch(model, optimizer, batches)
    model.train()
    loss_fn = nn.BCEWithLogitsLoss()
    total, rows = 0.0, 0
    for users, items, labels in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(users, items), labels)
        loss.backward()
        add_l2_grad_(model, users, items, l2 / labels.shape[0])
        optimizer.step()
        total += loss.detach() * labels.shape[0]
        rows += labels.shape[0]
    return float(total) / rows
