"""ncf_lib.synthetic: generated MovieLens-like ratings, their shape, determinism and names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ncf_lib import synthetic
from ncf_lib.ratings import RATING_DTYPES
from ncf_lib.synthetic import synthetic_ratings


def test_synthetic_shape_and_determinism():
    a = synthetic_ratings(300, 400, 9_000, seed=3)
    b = synthetic_ratings(300, 400, 9_000, seed=3)
    c = synthetic_ratings(300, 400, 9_000, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert len(a) == 9_000 and a["user_id"].nunique() == 300
    assert not a.duplicated(["user_id", "item_id"]).any()
    assert a.dtypes.astype(str).to_dict() == RATING_DTYPES
    assert set(a["rating"].unique()) <= {1, 2, 3, 4, 5}
    assert a["timestamp"].between(946_684_800, 1_072_915_200).all()  # within 2000..2003
    popularity = a["item_id"].value_counts().to_numpy()
    assert popularity[:40].sum() > 3 * popularity[-40:].sum()  # long tail
    activity = a.groupby("user_id").size()
    assert activity.max() > 4 * activity.min()


class _Spy:
    """numpy, noting each call of ``argpartition``."""

    def __init__(self, module, calls: list) -> None:
        self._module, self._calls = module, calls

    def __getattr__(self, name):
        if name == "argpartition":
            self._calls.append(name)
        return getattr(self._module, name)


@pytest.mark.parametrize(
    "shape", [(300, 400, 9_000), (50, 9, 200), (500, 5_000, 20_000), (3_000, 20_000, 90_000)]
)
def test_synthetic_partial_sort_gives_the_full_sorts_data(shape, monkeypatch):
    """Each user's items are its top-scored ones in score order; a partition then a sort
    of the top picks what sorting every user's whole catalogue picked."""
    partial = []
    with monkeypatch.context() as patch:
        top = synthetic._top_in_order
        patch.setattr(synthetic, "np", _Spy(np, partial))
        fast = synthetic_ratings(*shape, seed=5)
    if shape[1] >= 5_000:
        assert partial, "the partial sort was not used"
    monkeypatch.setattr(synthetic, "_top_in_order", lambda keys, k: np.argsort(keys, axis=1))
    assert top is not synthetic._top_in_order
    pd.testing.assert_frame_equal(fast, synthetic_ratings(*shape, seed=5))


def test_synthetic_refuses_dense_matrix():
    with pytest.raises(ValueError, match="sparse"):
        synthetic_ratings(10, 10, 80)
