"""A row-sparse Adam for large catalogues (``TrainConfig(optimizer="sparse-adam")``).

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
