"""What a model learned about items: their embedding vectors, and nearest neighbours.

An item's vector is the concatenation of its rows in the model's item-side embedding
tables (``*item*``, biases left out): one table for GMF, MLP and MF, two for NeuMF, whose
GMF and MLP halves are learned for different interaction functions (a product and a
tower), so neighbours in the joined space are items both halves place near each other.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ncf_lib.errors import NonFiniteScoresError, UnknownIdError


def side_vectors(model: nn.Module, side: str, ids: np.ndarray | None = None) -> np.ndarray:
    """``(n, d)`` the concatenated ``side`` (``user`` or ``item``) embedding rows (NeuMF: the
    GMF and MLP halves; MF's biases are not part of them).

    Raises:
        NonFiniteScoresError: a row holds NaN or infinity (named by ``ids``, original ids, when
            given).
    """
    tables = [
        m.weight.detach().cpu()
        for name, m in model.named_children()
        if isinstance(m, nn.Embedding) and side in name and not name.endswith("_bias")
    ]
    vectors = torch.cat(tables, dim=1).numpy()
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if bad.size:
        first = ids[bad[0]] if ids is not None else bad[0]
        raise NonFiniteScoresError(
            f"the model's embedding of {side} {first} (and {bad.size - 1} more) is NaN or "
            "infinite: a diverged or damaged model"
        )
    return vectors


def similar_items(
    model: nn.Module, item: int, k: int = 10, ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` items closest to ``item`` by cosine similarity of their vectors (``ids``:
    the original item ids, to name a row that is not finite).

    Returns:
        ``items (k,)`` contiguous ids, most similar first (``item`` itself left out), and
        their cosines ``(k,)``.
    """
    vectors = side_vectors(model, "item", ids)
    if not 0 <= item < vectors.shape[0]:
        raise UnknownIdError(f"item {item} is outside 0..{vectors.shape[0] - 1}")
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    cosine = unit @ unit[item]
    cosine[item] = -np.inf
    k = min(k, vectors.shape[0] - 1)
    top = np.argsort(-cosine, kind="stable")[:k]
    return top, cosine[top]
