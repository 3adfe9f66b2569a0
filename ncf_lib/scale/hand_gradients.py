"""An optional CPU engine: the exact gradients of GMF, MLP, NeuMF and MF, written by hand.

For models this small, autograd's per-operator bookkeeping costs about as much on a CPU as
the arithmetic itself. :func:`loss_and_grads_` computes a batch's mean
``BCEWithLogitsLoss`` and sets every parameter's ``.grad`` to what ``loss.backward()`` would
give, bit for bit (tested for each model), with public PyTorch operators and no graph.

It is chosen by the **exact class** (:func:`supports`): a subclass, a model whose
``forward`` was replaced, a changed tower, dropout, a model wrapped for DDP, or any class of
your own trains through autograd, so what you write is what is trained. It is opt-in:
``fit(..., train_epoch=ncf_lib.scale.hand_gradients.train_epoch)``, or
``--engine hand`` on the command line; by default everything trains with autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from ncf_lib.models import GMF, MF, MLP, NeuMF, Recommender
from ncf_lib.scale import optimizers


def supports(model: nn.Module) -> bool:
    """Whether :func:`loss_and_grads_` computes this model's gradients: its class is exactly
    GMF, MLP, NeuMF or MF, unmodified, on the CPU, without dropout."""
    if type(model) not in _BACKWARD or "forward" in vars(model):
        return False
    tower = getattr(model, "tower", nn.Sequential())
    pattern = [nn.Linear, nn.ReLU] * (len(tower) // 2)
    return (
        [type(m) for m in tower] == pattern
        and all(p.device.type == "cpu" for p in model.parameters())
        and model.config.dropout == 0
    )


@torch.no_grad()
def loss_and_grads_(
    model: Recommender, users: torch.Tensor, items: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean BCE-with-logits of ``(batch,)`` users, items and labels; fills every ``.grad``
    (overwriting what was there, so no ``zero_grad`` is needed). Check :func:`supports`."""
    return _BACKWARD[type(model)](model, users, items, labels)


def train_epoch(
    model: Recommender,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    *,
    l2: float = 0.0,
) -> float:
    """:func:`ncf_lib.train.train_epoch` with :func:`loss_and_grads_` in place of
    ``zero_grad``, forward and ``backward``: the same updates, with dense or sparse
    (``sparse-adam``) gradients. A model :func:`supports` refuses trains with autograd
    (:func:`ncf_lib.scale.optimizers.train_epoch`). Returns the mean loss."""
    if not supports(model):
        return optimizers.train_epoch(model, optimizer, batches, l2=l2)
    model.train()
    total, rows = torch.zeros(()), 0
    for users, items, labels in batches:
        loss = loss_and_grads_(model, users, items, labels)
        if l2:
            optimizers.add_l2_grad_(model, users, items, l2 / labels.shape[0])
        optimizer.step()
        total += loss * labels.shape[0]
        rows += labels.shape[0]
    return float(total) / rows


def _grad(param: torch.Tensor) -> torch.Tensor:
    """``param.grad``, allocated once and then overwritten in place."""
    if param.grad is None:
        param.grad = torch.zeros_like(param)
    return param.grad


def _table_grad_(table: nn.Embedding, ids: torch.Tensor, rows: torch.Tensor) -> None:
    """``(batch, dim)`` row gradients summed into the zeroed table gradient (``index_add_``,
    the order autograd sums in); for a table with ``sparse=True``, the sparse gradient
    autograd gives it: the ``(batch,)`` indices with their rows (contiguous, as autograd's:
    adding the L2 penalty to them then sums in the same order), not summed."""
    if table.sparse:
        table.weight.grad = torch.sparse_coo_tensor(
            ids[None], rows.contiguous(), table.weight.shape, check_invariants=False
        )
    else:
        _grad(table.weight).zero_().index_add_(0, ids, rows)


def _linear_grad_(layer: nn.Linear, d_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gradients of ``layer`` from ``(batch, out)`` output gradients and its ``(batch, in)``
    input; returns the ``(batch, in)`` input gradient."""
    torch.mm(d_out.t(), x, out=_grad(layer.weight))
    torch.sum(d_out, 0, out=_grad(layer.bias))
    return d_out @ layer.weight


def _linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return torch.addmm(layer.bias, x, layer.weight.t())


def _rows(table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """``(batch, dim)`` rows of a table (``index_select``, as ``nn.Embedding`` on the CPU)."""
    return table.weight.index_select(0, ids)


def _bce_and_grad(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean BCE-with-logits of ``(batch,)`` logits and its ``(batch, 1)`` gradient."""
    loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
    return loss, (torch.sigmoid(logits) - labels).div_(labels.shape[0]).unsqueeze(1)


def _hidden(tower: nn.Sequential) -> list[nn.Linear]:
    """The tower's linear layers (slicing a ``Sequential`` would build a new module)."""
    return [m for m in tower if isinstance(m, nn.Linear)]


def _tower_forward(tower: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The input of every hidden layer, then the last hidden output."""
    acts = [x]
    for layer in _hidden(tower):
        acts.append(_linear(layer, acts[-1]).relu_())
    return acts


def _tower_backward(tower: nn.Sequential, acts: list[torch.Tensor], dh: torch.Tensor):
    """Gradients of the tower's layers from ``(batch, layers[-1])``; returns the input's."""
    layers = _hidden(tower)
    for k in range(len(layers) - 1, -1, -1):
        dh = _linear_grad_(layers[k], dh.masked_fill(acts[k + 1] <= 0, 0.0), acts[k])
    return dh


def _gmf(model: GMF, users, items, labels):
    p, q = _rows(model.user_embedding, users), _rows(model.item_embedding, items)
    h = p * q
    loss, d = _bce_and_grad(_linear(model.output, h).squeeze(1), labels)
    dh = _linear_grad_(model.output, d, h)  # (batch, factor_num)
    _table_grad_(model.user_embedding, users, dh * q)
    _table_grad_(model.item_embedding, items, dh * p)
    return loss


def _concat_rows(user_table: nn.Embedding, item_table: nn.Embedding, users, items):
    """The MLP's input: ``(batch, 2 * dim)`` user rows, then item rows."""
    return torch.cat([_rows(user_table, users), _rows(item_table, items)], 1)


def _concat_grad_(user_table: nn.Embedding, item_table: nn.Embedding, users, items, dx):
    """Split the ``(batch, 2 * dim)`` input gradient back into the two tables' gradients."""
    half = user_table.embedding_dim
    _table_grad_(user_table, users, dx[:, :half])
    _table_grad_(item_table, items, dx[:, half:])


def _mlp(model: MLP, users, items, labels):
    x = _concat_rows(model.user_embedding, model.item_embedding, users, items)
    acts = _tower_forward(model.tower, x)
    loss, d = _bce_and_grad(_linear(model.output, acts[-1]).squeeze(1), labels)
    dx = _tower_backward(model.tower, acts, _linear_grad_(model.output, d, acts[-1]))
    _concat_grad_(model.user_embedding, model.item_embedding, users, items, dx)
    return loss


def _neumf(model: NeuMF, users, items, labels):
    p, q = _rows(model.gmf_user_embedding, users), _rows(model.gmf_item_embedding, items)
    x = _concat_rows(model.mlp_user_embedding, model.mlp_item_embedding, users, items)
    acts = _tower_forward(model.tower, x)
    fused = torch.cat([p * q, acts[-1]], 1)
    loss, d = _bce_and_grad(_linear(model.output, fused).squeeze(1), labels)
    d_fused = _linear_grad_(model.output, d, fused)
    f = model.gmf_user_embedding.embedding_dim
    _table_grad_(model.gmf_user_embedding, users, d_fused[:, :f] * q)
    _table_grad_(model.gmf_item_embedding, items, d_fused[:, :f] * p)
    dx = _tower_backward(model.tower, acts, d_fused[:, f:])
    _concat_grad_(model.mlp_user_embedding, model.mlp_item_embedding, users, items, dx)
    return loss


def _mf(model: MF, users, items, labels):
    p, q = _rows(model.user_embedding, users), _rows(model.item_embedding, items)
    bu, bi = _rows(model.user_bias, users), _rows(model.item_bias, items)  # (batch, 1)
    logits = model.bias + bu.squeeze(-1) + bi.squeeze(-1) + (p * q).sum(-1)
    loss, d = _bce_and_grad(logits, labels)
    _grad(model.bias).copy_(d.sum())
    _table_grad_(model.user_bias, users, d)
    _table_grad_(model.item_bias, items, d)
    _table_grad_(model.user_embedding, users, d * q)
    _table_grad_(model.item_embedding, items, d * p)
    return loss


_BACKWARD: dict[type, Callable] = {GMF: _gmf, MLP: _mlp, NeuMF: _neumf, MF: _mf}
