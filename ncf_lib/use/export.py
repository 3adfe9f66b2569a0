"""Exporting a model's embeddings with their original ids and titles, for other tools.

``export_embeddings`` writes three files into a folder:

* ``embeddings.npz``: ``user_ids (n_users,)``, ``user_vectors (n_users, d_user)``,
  ``item_ids (n_items,)``, ``item_vectors (n_items, d_item)`` and ``titles (n_items,)``
  (empty strings when the dataset has none); ids are integers or strings as in the
  ratings file;
* ``users.csv``: ``user_id, e0, e1, ...``; ``items.csv``: ``item_id, title, e0, e1, ...``;
  a title or an id that is a name and starts like a formula (``=``, ``+``, ``-``, ``@``) gets
  a leading ``'`` there, so a spreadsheet shows it rather than running it (OWASP's advice on
  CSV injection; ``embeddings.npz`` keeps the text as it is).

Vectors are those of :func:`ncf_lib.use.similar.side_vectors` (NeuMF: GMF and MLP halves side by
side), ready for an approximate-nearest-neighbour index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ncf_lib.files import atomic_write, check_writable
from ncf_lib.models import Recommender
from ncf_lib.use.similar import side_vectors
from ncf_lib.use.titles import spreadsheet_safe

#: The files :func:`export_embeddings` writes.
EXPORTED = ("embeddings.npz", "users.csv", "items.csv")


def is_export(path: Path) -> bool:
    """Does ``path`` look like a file :func:`export_embeddings` wrote (an ``.npz`` with its
    arrays, a CSV with its header)?"""
    if path.name == "embeddings.npz":
        try:
            with np.load(path, allow_pickle=False) as saved:
                return {"user_ids", "user_vectors", "item_ids", "item_vectors"} <= set(saved.files)
        except (OSError, ValueError):
            return False
    first = {"users.csv": b"user_id,e0", "items.csv": b"item_id,title,e0"}.get(path.name)
    with open(path, "rb") as handle:
        return first is not None and handle.readline().startswith(first)


def _cells(texts) -> list[str]:
    return [spreadsheet_safe(str(t)) for t in texts]


def export_embeddings(
    model: Recommender,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    titles: np.ndarray | None,
    folder: str | Path,
) -> Path:
    """Write ``embeddings.npz``, ``users.csv`` and ``items.csv`` into ``folder``."""
    folder = check_writable(folder, "export folder")
    users, items = side_vectors(model, "user", user_ids), side_vectors(model, "item", item_ids)
    names = np.asarray(titles if titles is not None else [""] * len(item_ids), dtype=str)
    kind = lambda ids: ids if np.asarray(ids).dtype.kind in "iu" else np.asarray(ids, str)  # noqa: E731
    with atomic_write(folder / "embeddings.npz") as tmp:
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                user_ids=kind(user_ids),
                user_vectors=users,
                item_ids=kind(item_ids),
                item_vectors=items,
                titles=names,
            )
    columns = lambda width: [f"e{j}" for j in range(width)]  # noqa: E731
    safe = lambda ids: ids if np.asarray(ids).dtype.kind in "iu" else _cells(ids)  # noqa: E731
    user_table = pd.DataFrame(users, columns=columns(users.shape[1]))
    user_table.insert(0, "user_id", safe(user_ids))
    item_table = pd.DataFrame(items, columns=columns(items.shape[1]))
    item_table.insert(0, "title", _cells(names))
    item_table.insert(0, "item_id", safe(item_ids))
    for name, table in (("users.csv", user_table), ("items.csv", item_table)):
        with atomic_write(folder / name) as tmp:
            table.to_csv(tmp, index=False, float_format="%.8g")
    return folder
