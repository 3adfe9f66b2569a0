"""Movie titles: finding a movie by its title (case-insensitive, with the closest titles when
there is no match), and showing titles and other text from a file safely: on a terminal
(:func:`visible`) and in a spreadsheet (:func:`spreadsheet_safe`)."""

from __future__ import annotations

import difflib
import re

import numpy as np

from ncf_lib.errors import UnknownIdError

#: Characters that act on a terminal or reorder text instead of showing: C0 and C1 controls
#: (ESC starts colour, cursor and OSC sequences), DEL, and Unicode's bidirectional controls.
_ACTING = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: object) -> str:
    """``text`` with every character that would act on a terminal instead of being shown
    written as its escape (``\\x1b``, ``\\u202e``; a newline too), so a title or a typed
    value from a file cannot recolour, move or reorder what is printed."""
    return _ACTING.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


#: First characters that make a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text`` as a spreadsheet shows it, not as a formula it runs: a cell starting with one
    of :data:`FORMULA_STARTS` gets a leading ``'`` (OWASP's advice on CSV injection)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


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
