"""Top-k by inner product: the dot-product models (MF, GMF) served from their item vectors.

MF's score ``b + b_u + b_i + p_u . q_i`` and GMF's ``h . (p_u * q_i) + b`` are both a user
vector dotted with an item vector once the biases and ``h`` are folded in
(:func:`dot_product_vectors`), so a user's top-k is one matrix product (:class:`ExactIndex`)
or a search in an approximate inner-product index (:class:`FaissIndex`, from the ``faiss-cpu``
package). NeuMF and the MLP score a pair through a tower of ReLU layers: no such vectors exist,
and every candidate must go through the model (Rendle et al., RecSys 2020, section 4).
"""

from __future__ import annotations

import numpy as np
import torch

from ncf_lib.errors import ConfigError
from ncf_lib.models import GMF, MF, Recommender

#: Index kinds :func:`build_index` knows.
KINDS = ("exact", "flat", "hnsw")


@torch.inference_mode()
def dot_product_vectors(model: Recommender) -> tuple[np.ndarray, np.ndarray]:
    """``users (n_users, d)`` and ``items (n_items, d)`` float32 vectors whose dot products
    are ``model``'s logits: MF ``[p_u, 1, b + b_u] . [q_i, b_i, 1]``, GMF
    ``[h * p_u, b] . [q_i, 1]``.

    Raises:
        ConfigError: the model is not a dot product (NeuMF, MLP).
    """
    if isinstance(model, MF):
        p, q = model.user_embedding.weight, model.item_embedding.weight
        b_u, b_i = model.user_bias.weight, model.item_bias.weight
        users = torch.cat([p, torch.ones_like(b_u), b_u + model.bias], dim=1)
        items = torch.cat([q, b_i, torch.ones_like(b_i)], dim=1)
    elif isinstance(model, GMF):
        h, b = model.output.weight[0], model.output.bias
        users = torch.cat([model.user_embedding.weight * h, b.expand(model.n_users, 1)], dim=1)
        q = model.item_embedding.weight
        items = torch.cat([q, torch.ones(q.shape[0], 1, dtype=q.dtype, device=q.device)], dim=1)
    else:
        raise ConfigError(
            f"{type(model).__name__} scores a user and an item through its MLP tower, not a "
            "dot product: it has no vectors for an inner-product index (MF and GMF do)"
        )
    return (users.float().cpu().numpy(), items.float().cpu().numpy())


class ExactIndex:
    """Every item scored by one matrix product: the exact top-k."""

    def __init__(self, items: np.ndarray):
        self.items = np.ascontiguousarray(items, dtype=np.float32)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, items)``, each ``(queries, k)``, best first."""
        scores = np.asarray(queries, dtype=np.float32) @ self.items.T
        k = min(k, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        return np.take_along_axis(scores, top, axis=1), top


class FaissIndex:
    """An index of FAISS: ``flat`` (exact inner products, FAISS's own kernels) or ``hnsw``
    (a navigable small-world graph: approximate, sub-linear in the items).

    HNSW finds near neighbours in Euclidean distance, and a graph built on inner products of
    vectors of unequal lengths finds poor ones. So the items get one more coordinate,
    ``sqrt(R**2 - |x|**2)`` with ``R`` the largest item norm, and queries a zero: every item
    is then at distance ``R`` from the origin and the nearest item to a query is the one
    with the largest inner product (Bachrach et al., RecSys 2014).

    Args:
        items: ``(n_items, d)`` item vectors.
        kind: ``flat`` or ``hnsw``.
        neighbours: HNSW's links per node (``M``).
        ef_search: HNSW's candidate list at query time (recall against speed).
    """

    def __init__(
        self, items: np.ndarray, kind: str = "hnsw", neighbours: int = 32, ef_search: int = 128
    ):
        try:
            import faiss
        except ImportError:
            raise ConfigError(
                "an index of kind flat or hnsw needs the faiss-cpu package "
                "(pip install 'ncf-tutorial[serve]', which make install installs)"
            ) from None
        items = np.ascontiguousarray(items, dtype=np.float32)
        self.kind, self.items = kind, items
        if kind == "flat":
            self.index = faiss.IndexFlatIP(items.shape[1])
        elif kind == "hnsw":
            norms = np.einsum("ij,ij->i", items, items)
            lift = np.sqrt(np.maximum(norms.max() - norms, 0))[:, None].astype(np.float32)
            items = np.ascontiguousarray(np.hstack([items, lift]))
            self.index = faiss.IndexHNSWFlat(items.shape[1], neighbours)
            self.index.hnsw.efConstruction = max(ef_search, 2 * neighbours)
            self.index.hnsw.efSearch = ef_search
        else:
            raise ConfigError(f"index kind must be flat or hnsw, got {kind!r}")
        self.index.add(items)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, items)``, each ``(queries, k)``: inner products, best first (item -1:
        fewer found)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, self.index.ntotal)
        if self.kind == "flat":
            return self.index.search(queries, k)
        lifted = np.hstack([queries, np.zeros((queries.shape[0], 1), dtype=np.float32)])
        _, found = self.index.search(np.ascontiguousarray(lifted), k)
        scores = np.einsum("qd,qkd->qk", queries, self.items[np.maximum(found, 0)])
        return np.where(found >= 0, scores, -np.inf).astype(np.float32), found


def build_index(items: np.ndarray, kind: str = "exact") -> ExactIndex | FaissIndex:
    """An index of ``kind`` (one of :data:`KINDS`) over ``(n_items, d)`` item vectors."""
    if kind not in KINDS:
        raise ConfigError(f"index kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return ExactIndex(items) if kind == "exact" else FaissIndex(items, kind)


def top_k_excluding(
    index: ExactIndex | FaissIndex, query: np.ndarray, k: int, exclude: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One user's ``(items (k,), scores (k,))`` from ``index``, without the ``exclude``
    items (its history): it asks for ``k + len(exclude)`` and drops them."""
    scores, items = index.search(query[None, :], k + len(exclude))
    keep = (items[0] >= 0) & ~np.isin(items[0], exclude)
    return items[0][keep][:k], scores[0][keep][:k]


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """The share of the exact top-k ``(queries, k)`` that ``found`` ``(queries, k)`` holds."""
    hits = [np.intersect1d(f, e).size for f, e in zip(found, exact)]
    return float(np.sum(hits) / exact.size)
