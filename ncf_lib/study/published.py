"""Published MovieLens-1M numbers (HR@10, NDCG@10) with their sources, to show beside ours."""

from __future__ import annotations

from importlib.resources import files

import pandas as pd


def published_ml1m() -> pd.DataFrame:
    """One row per published result: ``source, model, factors, pretrained, hr, ndcg,
    protocol, how_checked``. All use the paper's protocol (latest item held out, ranked
    among 99 sampled negatives) and pick the best epoch on the test set."""
    with files("ncf_lib.study").joinpath("published_ml1m.csv").open() as f:
        return pd.read_csv(f)
