"""Shared fixtures: small generated data, and the real MovieLens-100K when it is beside us."""

from __future__ import annotations

from pathlib import Path

import pytest

from ncf_lib.dataset import build_dataset
from ncf_lib.ratings import Ratings
from ncf_lib.synthetic import synthetic_movies, synthetic_ratings

REPO = Path(__file__).resolve().parent.parent
ML100K = REPO.parent / "shared" / "data" / "ml-100k"


@pytest.fixture(scope="session")
def small_ratings() -> Ratings:
    """200 users x 300 items x 6,000 generated ratings."""
    frame = synthetic_ratings(200, 300, 6_000, seed=1)
    return Ratings(frame, synthetic_movies(frame["item_id"].unique()), "synthetic:200x300x6000")


@pytest.fixture(scope="session")
def small_data(small_ratings):
    return build_dataset(small_ratings, num_ng_test=99, seed=7)


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    if not (ML100K / "u.data").is_file():
        pytest.skip(
            f"real MovieLens-100K not found at {ML100K} (GroupLens' files are not "
            "redistributed; extract ml-100k.zip there to run this test)"
        )
    return ML100K
