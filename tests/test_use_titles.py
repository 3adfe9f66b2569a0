"""ncf_lib.use.titles: movies found by title."""

from __future__ import annotations

import numpy as np
import pytest

from ncf_lib.errors import UnknownIdError
from ncf_lib.use.titles import match_title


def test_title_matching():
    titles = np.array(["Toy Story (1995)", "Heat (1995)", "Hamlet (1996)", "Hamlet (1996)"])
    ids = np.array([1, 6, 10, 11])
    assert match_title("  toy STORY   (1995) ", titles, ids) == 0
    with pytest.raises(UnknownIdError, match=r"closest: Toy Story \(1995\)"):
        match_title("Toy Stori (1995)", titles, ids)
    with pytest.raises(UnknownIdError, match=r"ambiguous.*id 10.*id 11"):
        match_title("hamlet (1996)", titles, ids)
    with pytest.raises(UnknownIdError, match="no titles"):
        match_title("Heat (1995)", None, ids)
