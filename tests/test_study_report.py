"""ncf_lib.study.report: the results page's tables and counts, the paired differences in
them, and the committed tables generated from the committed grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from ncf_lib.study.paired import detectable_difference
from ncf_lib.study.report import (
    BEGIN,
    END,
    TABLES,
    dataset_label,
    detectable,
    markdown_summary,
    order_disagreements,
    results_table,
    results_tables,
    summary,
    update_page,
)


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


def _grid(users: int = 400, seeds=(0, 1)):
    """Results and users' ranks of three models: ``good`` (hit 70% of users), ``twin`` (good's
    hits with 2% of users flipped each way) and ``bad`` (hit 45%)."""
    rng = np.random.default_rng(0)
    easy = rng.permutation(users) / users  # exactly 70% below 0.7
    rows, ranks = [], []
    for seed in seeds:
        flip = rng.random(users) < 0.02
        hits = {"good": easy < 0.7, "twin": (easy < 0.7) ^ flip, "bad": easy < 0.45}
        for model, hit in hits.items():
            key = f"main|{model}|s{seed}"
            rank = np.where(hit, rng.integers(0, 10, users), rng.integers(10, 99, users))
            full = np.where(hit, 0, 50)
            ranks.append(
                pd.DataFrame(
                    {"user_id": np.arange(users), "rank": rank, "full_rank": full, "key": key}
                )
            )
            gains = np.where(rank < 10, 1 / np.log2(rank + 2.0), 0)
            rows.append(
                {"key": key, "model": model, "factors": 32, "seed": seed, "study": "main",
                 "hr@10": (rank < 10).mean(), "ndcg@10": gains.mean(),
                 "full_hr@10": (full < 10).mean(), "full_ndcg@10": (full < 10).mean()}
            )  # fmt: skip
    return pd.DataFrame(rows), pd.concat(ranks, ignore_index=True)


def test_the_results_table_marks_a_real_difference_and_not_a_tie():
    results, ranks = _grid()
    text = results_table(results, ranks)
    row = {
        line.split(" | ")[0].strip("| "): line
        for line in text.splitlines()
        if line.startswith("| ")
    }
    assert "**0.700 ± 0.000**" in row["good"] and " best " in row["good"]
    diff = row["bad"].split(" | ")[-2]  # HR@10 minus the best's: -0.25 on every seed
    assert diff.startswith("-0.250 [") and diff.endswith("]*")
    assert not row["twin"].split(" | ")[-2].endswith("*")  # 2% flipped each way: no difference
    hit = {k: g["rank"].to_numpy() < 10 for k, g in ranks.groupby("key")}
    by_hand = [
        np.mean([(hit[f"main|good|s{s}"] != hit[f"main|{other}|s{s}"]).mean() for s in (0, 1)])
        for other in ("twin", "bad")
    ]
    rate, smallest = detectable(results, ranks)  # the median of the two: their mean
    assert rate == pytest.approx(np.mean(by_hand)) and 0.01 < by_hand[0] < 0.04
    assert smallest["here"] == pytest.approx(detectable_difference(400, rate))
    assert f"{smallest['here']:.3f} on these 400" in text
    assert f"{smallest['MovieLens-1M']:.3f} on MovieLens-1M's 6,040" in text


def test_update_page_replaces_only_between_its_lines(tmp_path):
    page = tmp_path / "page.md"
    begin, end = BEGIN.format(name="t.md"), END.format(name="t.md")
    page.write_text(f"before\n{begin}\nold\n{end}\nafter\n")
    assert update_page(page, "t.md", "| new |\n") is True
    assert page.read_text() == f"before\n{begin}\n| new |\n{end}\nafter\n"
    assert update_page(page, "t.md", "| new |\n") is False
    with pytest.raises(ValueError, match=r"page\.md: no lines .*other\.md"):
        update_page(page, "other.md", "x")


RESULTS = REPO / "docs" / "results-ml-100k"


def test_the_committed_tables_are_generated_from_the_committed_grid():
    """README's and the book's results tables are the files `make reproduce` wrote from its
    results and users' ranks, not typed: regenerated, they are the same text."""
    results, ranks = pd.read_csv(RESULTS / "results.csv"), pd.read_csv(RESULTS / "ranks.csv.gz")
    tables = results_tables(results, ranks)
    assert set(tables) == set(TABLES)
    for name, text in tables.items():
        assert (RESULTS / name).read_text() == text, name
    for page, name in (("README.md", "table.md"), ("docs/results.md", "table-wide.md")):
        text, name = (REPO / page).read_text(), f"docs/results-ml-100k/{name}"
        shown = text.split(BEGIN.format(name=name) + "\n")[1].split(END.format(name=name))[0]
        assert shown == (REPO / name).read_text(), page
