"""ncf_lib.study.report: the results page's tables and counts."""

from __future__ import annotations

import pandas as pd
import pytest

from ncf_lib.study.report import dataset_label, markdown_summary, order_disagreements, summary


def test_dataset_label_names_the_dataset_not_the_folder(tmp_path):
    assert dataset_label("ml-100k") == "ml-100k"
    assert dataset_label("synthetic:10x20x30") == "synthetic:10x20x30"
    assert dataset_label(tmp_path / "data" / "ml-100k") == "ml-100k"
    assert dataset_label("../shared/data/ml-100k/") == "ml-100k"


def test_summary_means_and_markdown():
    rows = pd.DataFrame(
        {
            "model": ["gmf", "gmf", "itempop"],
            "factors": [32, 32, 32],
            "study": "main",
            "hr@10": [0.6, 0.7, 0.4],
            "ndcg@10": [0.3, 0.4, 0.2],
            "full_hr@10": 0.1,
            "full_ndcg@10": 0.05,
        }
    )
    table = summary(rows)
    assert list(table["model"]) == ["itempop", "gmf"]
    assert table.loc[1, "hr@10 mean"] == pytest.approx(0.65)
    text = markdown_summary(table)
    assert "| gmf | 32 | 0.650 ± 0.071 |" in text and "| itempop | 32 | 0.400 |" in text
    epochs = markdown_summary(summary(rows.assign(peek_epoch=[3, 4, 0]), metrics=("peek_epoch",)))
    assert "| gmf | 32 | 3.5 ± 0.7 |" in epochs


def test_order_disagreements_count_pairs_ordered_otherwise_than_the_full_ranking():
    rows = pd.DataFrame(
        {
            "model": ["a", "b", "c", "a"],
            "full_hr@10": [0.30, 0.20, 0.10, 0.30],
            "hr@10": [0.50, 0.60, 0.70, 0.50],  # c > b > a: every pair reversed
            "corrected_hr@10": [0.31, 0.12, 0.14, 0.29],  # a > c > b: b and c swapped
        }
    )
    assert order_disagreements(rows) == {"sampled": 3, "corrected": 1, "pairs": 3}
