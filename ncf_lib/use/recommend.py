"""Top-N recommendations for a user, with titles, excluding what the user already rated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ncf_lib.errors import NonFiniteScoresError
from ncf_lib.models import Recommender


@torch.inference_mode()
def recommend(
    model: Recommender,
    user: int,
    k: int = 10,
    *,
    exclude: np.ndarray | None = None,
    name: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` highest-scoring items for one (contiguous) user id.

    Args:
        model: a trained model.
        user: contiguous user id.
        k: how many items.
        exclude: item ids never to recommend (the user's history).
        name: how an error names the user (e.g. ``user 6``, its original id).

    Raises:
        NonFiniteScoresError: the model's scores are not finite (a diverged model).

    Returns:
        ``items (k,)`` contiguous ids, best first, and ``probabilities (k,)`` (sigmoid of
        the logits: a score learned against sampled negatives, not a calibrated probability).
    """
    device = next(model.parameters()).device
    items = torch.arange(model.n_items, device=device)
    logits = model.score(torch.tensor([user], device=device), items[None, :])[0]
    if not torch.isfinite(logits).all():
        raise NonFiniteScoresError(
            f"the model scores NaN or infinity for {name or f'user {user}'}: its weights are "
            "not finite (a diverged or damaged model)"
        )
    if exclude is not None and len(exclude):
        logits[torch.as_tensor(exclude, device=device)] = float("-inf")
    k = min(k, int(torch.isfinite(logits).sum()))
    top = torch.topk(logits, k)
    return top.indices.cpu().numpy(), torch.sigmoid(top.values).cpu().numpy()


def recommendation_table(
    items: np.ndarray, probabilities: np.ndarray, item_ids: np.ndarray, titles: np.ndarray | None
) -> pd.DataFrame:
    """A table of recommendations: rank, original item id, title, probability."""
    return pd.DataFrame(
        {
            "rank": np.arange(1, items.size + 1),
            "item_id": item_ids[items],
            "title": titles[items] if titles is not None else "",
            "probability": probabilities.round(3),
        }
    )
