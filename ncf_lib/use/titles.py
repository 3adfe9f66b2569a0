"""Finding movies by title: case-insensitive, with the closest titles when there is no match."""

from __future__ import annotations

import difflib

import numpy as np

from ncf_lib.errors import UnknownIdError


def match_title(query: str, titles: np.ndarray | None, item_ids: np.ndarray) -> int:
    """The contiguous item id of the movie titled ``query`` (case and spaces ignored).

    Args:
        query: a title such as ``"Toy Story (1995)"``.
        titles: ``(n_items,)`` titles of the contiguous items, or ``None``.
        item_ids: ``(n_items,)`` their original ids (named in the error for duplicates).

    Raises:
        UnknownIdError: no title matches (the message lists the closest ones), several do
            (it lists them with their ids), or the dataset has no titles.
    """
    if titles is None:
        raise UnknownIdError(f"{query!r}: this dataset has no titles; give item ids instead")
    key = " ".join(query.split()).casefold()
    folded = np.array([" ".join(str(t).split()).casefold() for t in titles])
    found = np.flatnonzero(folded == key)
    if found.size == 1:
        return int(found[0])
    if found.size > 1:
        listed = ", ".join(f"{titles[i]} (id {item_ids[i]})" for i in found)
        raise UnknownIdError(f"{query!r} is ambiguous: {listed}; give the item id instead")
    close = difflib.get_close_matches(key, folded.tolist(), n=5, cutoff=0.5)
    if not close:  # fall back to titles that contain the words
        close = [t for t in folded.tolist() if key.split("(")[0].strip() in t][:5]
    names = [str(titles[np.flatnonzero(folded == c)[0]]) for c in close]
    hint = f"; closest: {'; '.join(names)}" if names else ""
    raise UnknownIdError(f"no movie titled {query!r}{hint}")
