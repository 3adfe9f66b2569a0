"""ncf_lib.study.published: every published number has its source."""

from __future__ import annotations

from ncf_lib.study.published import published_ml1m


def test_published_numbers_have_sources():
    table = published_ml1m()
    assert {"source", "model", "hr", "ndcg", "how_checked"} <= set(table.columns)
    assert table["hr"].between(0, 1).all() and table["how_checked"].notna().all()
    paper = table[table["source"].str.startswith("He et al.")]
    assert set(paper["model"]) == {"MLP", "NeuMF"}
