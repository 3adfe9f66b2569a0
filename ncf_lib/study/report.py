"""Reports: a dataset's summary, and the grid's means and standard deviations over seeds,
the paired differences between its models, tables and plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ncf_lib.dataset import NCFData
from ncf_lib.files import atomic_write
from ncf_lib.plots import plot_history
from ncf_lib.study.grid import MODEL_NAMES
from ncf_lib.study.paired import (
    compare_to_best,
    detectable_difference,
    discordance,
    seed_outcomes,
    user_means,
)
from ncf_lib.study.plots import plot_hr_at_k, plot_orderings, plot_study
from ncf_lib.study.published import published_ml1m

#: How the results tables name each model.
DISPLAY = {
    "itempop": "ItemPop",
    "itemknn": "ItemKNN (cosine, k tuned)",
    "puresvd": "PureSVD (rank tuned)",
    "ease": "EASE (L2 tuned)",
    "ials": "iALS (`implicit`, tuned)",
    "mf": "MF (biases, L2 tuned)",
    "gmf": "GMF",
    "mlp": "MLP",
    "neumf": "NeuMF",
    "neumf-pre": "NeuMF with pre-training",
    "mf-bpr": "MF, BPR loss",
    "gmf-bpr": "GMF, BPR loss",
    "neumf-bpr": "NeuMF, BPR loss",
}
#: Test users of the larger MovieLens sets (one per user), for which the detectable
#: difference is stated beside this test set's.
TEST_USERS = {"MovieLens-1M": 6_040, "MovieLens-20M": 138_493}
#: The results table's metrics and their headers.
TABLE_METRICS = {
    "hr@10": "HR@10",
    "ndcg@10": "NDCG@10",
    "full_hr@10": "full-ranking HR@10",
    "full_ndcg@10": "full-ranking NDCG@10",
}
#: The wider table of the book's results page: the corrected sampled metrics too.
WIDE_METRICS = {
    "hr@10": "HR@10",
    "ndcg@10": "NDCG@10",
    "corrected_hr@10": "corrected HR@10",
    "corrected_ndcg@10": "corrected NDCG@10",
    "full_hr@10": "full-ranking HR@10",
    "full_ndcg@10": "full-ranking NDCG@10",
}
#: The tables :func:`write_report` writes: ``{file name: metrics}``.
TABLES = {"table.md": TABLE_METRICS, "table-wide.md": WIDE_METRICS}
#: The metrics whose difference from the best model the results table shows.
DIFFERENCES = ("hr@10", "full_hr@10")
#: Level of the paired tests, after Holm's correction.
LEVEL = 0.05


def dataset_label(dataset: str | Path) -> str:
    """A dataset's name for reports and plots: a name as given, a path by its last part
    (``ml-100k`` for ``../data/ml-100k/``), so no machine's folders show."""
    return Path(str(dataset)).name or str(dataset)


def dataset_summary(data: NCFData, interactions: int, timings: dict[str, float]) -> dict:
    """``{what: value}`` of a dataset and its split, with the seconds of each stage."""
    return {
        "dataset": data.name,
        "users": data.n_users,
        "items": data.n_items,
        "interactions": interactions,
        "train": data.n_train,
        "validation users": 0 if data.validation is None else data.validation.users.size,
        "test users": data.test.users.size,
        "test candidates per user": data.test.candidates.shape[1],
        "density": f"{data.density:.4%}",
        "titles": "yes" if data.titles is not None else "no",
        **{
            f"{side} ids": "integers" if ids.dtype.kind in "iu" else "names"
            for side, ids in (("user", data.user_ids), ("item", data.item_ids))
        },
        **{f"seconds {stage}": f"{sec:.3f}" for stage, sec in timings.items()},
        "seconds total": f"{sum(timings.values()):.3f}",
    }


def summary(
    results: pd.DataFrame,
    study: str = "main",
    metrics: tuple[str, ...] = (
        "hr@10",
        "ndcg@10",
        "corrected_hr@10",
        "corrected_ndcg@10",
        "full_hr@10",
        "full_ndcg@10",
    ),
) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each model in one study (metrics missing
    from ``results``, as in files written before they existed, are left out)."""
    rows = results[results["study"] == study]
    metrics = tuple(m for m in metrics if m in rows.columns)
    grouped = rows.groupby(["model", "factors"], sort=False)
    table = grouped[list(metrics)].agg(["mean", "std"])
    table.columns = [f"{m} {stat}" for m, stat in table.columns]
    table["runs"] = grouped.size()
    order = {name: i for i, name in enumerate(MODEL_NAMES)}
    return table.reset_index().sort_values(
        ["factors", "model"],
        key=lambda c: c.map(order) if c.name == "model" else c,
        ignore_index=True,
    )


def order_disagreements(results: pd.DataFrame, metric: str = "hr@10") -> dict[str, int]:
    """How many pairs of models the sampled ``metric`` and its corrected estimate order
    otherwise than the full-ranking one (means over seeds; ``{"sampled", "corrected",
    "pairs"}``, ``pairs`` being all pairs of models)."""
    means = results.groupby("model")[[metric, f"corrected_{metric}", f"full_{metric}"]].mean()
    full = means[f"full_{metric}"].to_numpy()
    upper = np.triu(np.ones((full.size, full.size), dtype=bool), k=1)

    def wrong(values: np.ndarray) -> int:
        signs = np.sign(values[:, None] - values[None, :]) != np.sign(full[:, None] - full[None, :])
        return int((signs & upper).sum())

    return {
        "sampled": wrong(means[metric].to_numpy()),
        "corrected": wrong(means[f"corrected_{metric}"].to_numpy()),
        "pairs": int(upper.sum()),
    }


def markdown_summary(table: pd.DataFrame) -> str:
    """``summary`` as a markdown table of ``mean ± std`` cells."""
    metrics = [c[: -len(" mean")] for c in table.columns if c.endswith(" mean")]
    lines = [
        "| model | factors | " + " | ".join(metrics) + " | runs |",
        "|---|---|" + "---|" * len(metrics) + "---|",
    ]
    for _, row in table.iterrows():
        cells = []
        for m in metrics:
            std, digits = row[f"{m} std"], 1 if "epoch" in m else 3  # epochs: counts
            cells.append(
                f"{row[f'{m} mean']:.{digits}f}" + ("" if pd.isna(std) else f" ± {std:.{digits}f}")
            )
        lines.append(
            f"| {row['model']} | {row['factors']} | " + " | ".join(cells) + f" | {row['runs']} |"
        )
    return "\n".join(lines)


def paired_differences(
    results: pd.DataFrame, ranks: pd.DataFrame, metrics=tuple(TABLE_METRICS)
) -> dict[str, pd.DataFrame]:
    """``{metric: compare_to_best(...)}`` over the main table's test users (seed-averaged;
    :func:`ncf_lib.study.paired.compare_to_best`)."""
    return {m: compare_to_best(seed_outcomes(results, ranks, m)) for m in metrics}


def detectable(
    results: pd.DataFrame, ranks: pd.DataFrame, metric: str = "hr@10"
) -> tuple[float, dict[str, float]]:
    """The discordance observed in the main table (the share of users hit by exactly one of
    the best model and another, same seed; median over the other models) and the difference
    in ``metric`` a paired test detects with 80% power at 5%: ``{"here": on these test
    users, name: on each of :data:`TEST_USERS`, were its discordance the same}``."""
    outcomes = seed_outcomes(results, ranks, metric)
    means = user_means(outcomes).mean()
    best = means.idxmax()
    rate = float(np.median([discordance(outcomes, best, m) for m in means.index if m != best]))
    users = {"here": len(outcomes), **TEST_USERS}
    return rate, {name: detectable_difference(n, rate) for name, n in users.items()}


def _difference_cell(row) -> str:
    if pd.isna(row.p):
        return "best"
    mark = "*" if row.holm_p < LEVEL else ""
    return f"{row.difference:+.3f} [{row.low:+.3f}, {row.high:+.3f}]{mark}"


def results_table(
    results: pd.DataFrame,
    ranks: pd.DataFrame,
    metrics: dict[str, str] = TABLE_METRICS,
    *,
    paired: dict[str, pd.DataFrame] | None = None,
) -> str:
    """The main results as a markdown table with a note: each model's mean ± std over seeds
    of ``metrics`` (``{column: header}``; the best in bold), its difference from the best
    model in each of :data:`DIFFERENCES` with a 95% paired interval, marked ``*`` when a
    paired test finds it after Holm's correction, and the differences this test set can
    detect. ``paired``: those differences (:func:`paired_differences`) when already computed."""
    main = results[results["study"] == "main"]
    table = summary(main, metrics=tuple(metrics)).set_index("model")
    if paired is None:
        paired = paired_differences(main, ranks, DIFFERENCES)
    headers = [
        *metrics.values(),
        *(f"{TABLE_METRICS[m]} − best [95% interval]" for m in paired),
    ]
    lines = ["| model | " + " | ".join(headers) + " |", "|---" * (len(headers) + 1) + "|"]
    best = {m: table[f"{m} mean"].round(3).max() for m in metrics}
    for model in table.index:
        cells = []
        for m in metrics:
            mean, std = table.loc[model, f"{m} mean"], table.loc[model, f"{m} std"]
            cell = f"{mean:.3f}" + ("" if pd.isna(std) else f" ± {std:.3f}")
            cells.append(f"**{cell}**" if round(mean, 3) == best[m] else cell)
        for frame in paired.values():
            cells.append(_difference_cell(next(frame[frame["model"] == model].itertuples())))
        lines.append(f"| {DISPLAY.get(model, model)} | " + " | ".join(cells) + " |")
    users, seeds = ranks["user_id"].nunique(), main["seed"].nunique()
    rate, smallest = detectable(main, ranks)
    here = smallest.pop("here")
    sizes = " and ".join(
        f"{d:.3f} on {name}'s {TEST_USERS[name]:,}" for name, d in smallest.items()
    )
    comparisons = len(table) - 1
    lines += [
        "",
        f"Mean ± std over {seeds} seeds. Differences: the model minus the best one of that "
        f"column, over the same {users:,} test users, each user's hit averaged over the "
        f"seeds; 95% interval from a paired bootstrap over users (10,000 resamples, each "
        f"interval on its own); `*`: a sign test on the users' hits finds the difference at "
        f"the {LEVEL:.0%} level after Holm's correction for the {comparisons} comparisons. "
        f"{rate:.1%} of the users are hit by exactly one of the best model and another "
        f"(median over the models, runs of the same seed). At that rate a paired test at 5% "
        f"detects with 80% power a difference in HR@10 of {here:.3f} on these {users:,} "
        f"users; were the rate the same, {sizes} test users.",
    ]
    return "\n".join(lines) + "\n"


#: Where a page holds a generated table: between these lines (``{name}``: the table's file).
BEGIN, END = "<!-- generated from {name}: make results-pages -->", "<!-- end of {name} -->"


def update_page(page: str | Path, name: str, text: str) -> bool:
    """Replace what ``page`` holds between the :data:`BEGIN` and :data:`END` lines of
    ``name`` by ``text``; returns whether the page changed. Raises :class:`ValueError` when
    the page lacks the lines."""
    page = Path(page)
    old = page.read_text()
    begin, end = BEGIN.format(name=name), END.format(name=name)
    if begin not in old or end not in old:
        raise ValueError(f"{page}: no lines {begin!r} ... {end!r} to put {name} between")
    head, rest = old.split(begin, 1)
    new = head + begin + "\n" + text + end + rest.split(end, 1)[1]
    if new != old:
        with atomic_write(page) as tmp:
            tmp.write_text(new)
    return new != old


def update_pages(table: str | Path, pages) -> list[Path]:
    """Put the generated ``table`` file (e.g. ``docs/results-ml-100k/table.md``, its path as
    the pages name it) into each of ``pages`` (:func:`update_page`); returns those changed."""
    text = Path(table).read_text()
    return [Path(page) for page in pages if update_page(page, str(table), text)]


def results_tables(results: pd.DataFrame, ranks: pd.DataFrame) -> dict[str, str]:
    """``{file name: markdown}`` of the :data:`TABLES` (:func:`results_table`), their paired
    bootstrap (seconds on MovieLens-100K) computed once for all of them."""
    paired = paired_differences(results[results["study"] == "main"], ranks, DIFFERENCES)
    return {
        name: results_table(results, ranks, metrics, paired=paired)
        for name, metrics in TABLES.items()
    }


def write_report(
    results: pd.DataFrame,
    histories: pd.DataFrame,
    out: str | Path,
    dataset: str,
    ranks: pd.DataFrame | None = None,
) -> Path:
    """``summary.md`` (:func:`report_page`), the plots of :func:`report_figures` as PNG
    files and, given the users' ranks, the :data:`TABLES` (:func:`results_tables`) in
    ``out``; returns the summary's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = report_figures(results, histories, dataset)
    for name, fig in figures.items():
        with atomic_write(out / f"{name}.png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
    table = None
    if ranks is not None and len(ranks) and (results["study"] == "main").any():
        for name, text in results_tables(results, ranks).items():
            with atomic_write(out / name) as tmp:
                tmp.write_text(text)
        table = text  # the wide one
    path = out / "summary.md"
    with atomic_write(path) as tmp:
        tmp.write_text(report_page(results, dataset, list(figures), table))
    return path


def report_figures(results: pd.DataFrame, histories: pd.DataFrame, dataset: str) -> dict:
    """``{name: matplotlib figure}``: HR@K of the main table's models, the sampled,
    corrected and full-ranking orders, each study's plot and the first seed's training
    curves (each when the results hold what it shows)."""
    published = published_ml1m()
    paper = published[published["source"].str.startswith("He et al.")].assign(
        model=lambda t: np.where(t["pretrained"] == "yes", "neumf-pre", t["model"].str.lower())
    )
    main = results[results["study"] == "main"]
    figures = {"hr_at_k": plot_hr_at_k(main)}
    if {"corrected_hr@10", "corrected_ndcg@10"} <= set(main.columns):
        figures["orderings"] = plot_orderings(main)
    if (results["study"] == "factors").any():
        figures["factors"] = plot_study(
            results[results["study"] == "factors"],
            "factors",
            f"Predictive factors ({dataset})",
            published=paper,
        )
    for study, x in (("negatives", "num_ng"), ("depth", "depth")):
        rows = results[results["study"] == study]
        if len(rows):
            factors = ", ".join(str(f) for f in sorted(rows["factors"].unique()))
            figures[study] = plot_study(
                rows, x, f"{study.capitalize()} ({dataset}, {factors} factors)"
            )
    if len(histories):
        first = main[main["seed"] == main["seed"].min()]
        runs = {
            row.model: histories[histories["key"] == row.key]
            for row in first.itertuples()
            if (histories["key"] == row.key).any()
        }
        figures["curves"] = plot_history(
            runs, best_epochs={r.model: r.epoch for r in first.itertuples()}
        )
    return figures


def report_page(
    results: pd.DataFrame, dataset: str, figures: list[str], table: str | None = None
) -> str:
    """The markdown of ``summary.md``: ours (mean ± std over seeds; given ``table``, that
    :func:`results_table` with the differences from the best model), the orders, the peeking
    numbers and the published MovieLens-1M ones, then the ``figures`` by name."""
    main = results[results["study"] == "main"]
    published = published_ml1m()
    lines = [
        f"# Results on {dataset}",
        "",
        "Test metrics, mean ± std over seeds. Chosen on the validation items: epochs, "
        "MF's and EASE's L2 weights, ItemKNN's k, PureSVD's rank, iALS's factors, L2 "
        "weight and positive weight, pre-trained NeuMF's alpha and fine-tuning epochs "
        "(0: the pre-trained combination as it is; see `params` and `epoch` in "
        "results.csv). The main table's models are then re-trained on training "
        "+ validation data for that many epochs. `hr@10`/`ndcg@10`: the held-out item "
        "among 100 candidates (the paper's protocol); `corrected_*`: the full-ranking "
        "metric estimated from those 100-candidate ranks (Krichene & Rendle, KDD 2020, "
        "bias-variance correction with gamma = 0.1, `ncf_lib/study/corrected.py`); `full_*`: "
        "among all items the user did not train on.",
        "",
        markdown_summary(summary(results)) if table is None else table,
        "",
    ]
    if "hr@10_se" in main and main["hr@10_se"].notna().any():
        lines += [
            f"The ± above is the spread over seeds on one fixed test set. A different test "
            f"set of the same size (or other sampled negatives) moves a model's numbers "
            f"more: the standard error over test users of one run is about "
            f"{main['hr@10_se'].mean():.3f} for HR@10 and {main['ndcg@10_se'].mean():.3f} "
            f"for NDCG@10 (columns `hr@10_se`, `ndcg@10_se`). Differences smaller than "
            f"that between numbers measured on different test sets are not evidence.",
            "",
        ]
    if "orderings" in figures:
        hr, gains = order_disagreements(main), order_disagreements(main, "ndcg@10")
        lines += [
            "## Sampled, corrected and full-ranking orders",
            "",
            f"Of the {hr['pairs']} pairs of models, the sampled HR@10 orders "
            f"{hr['sampled']} otherwise than the full-ranking HR@10, the corrected estimate "
            f"{hr['corrected']}; for NDCG@10, {gains['sampled']} and {gains['corrected']} "
            "(`orderings.png`).",
            "",
        ]
    if "peek_hr@10" in main and main["peek_hr@10"].notna().any():
        peeking = summary(
            main[main["peek_hr@10"].notna()],
            metrics=("hr@10", "peek_hr@10", "ndcg@10", "peek_ndcg@10", "peek_epoch"),
        )
        lines += [
            "## Had we picked the epoch on the test set",
            "",
            "The same re-trained models, continued to the full epoch budget and tested "
            "after every epoch: `peek_*` is the epoch with the best test HR@10, what the "
            "paper's code and its ports report (and what the published numbers below "
            "are), beside the epoch chosen on validation.",
            "",
            markdown_summary(peeking),
            "",
        ]
    lines += [
        "## Published (MovieLens-1M, best epoch picked on test)",
        "",
        "| source | model | factors | pre-trained | HR@10 | NDCG@10 | checked |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.source} | {r.model} | {'' if pd.isna(r.factors) else int(r.factors)} | "
        f"{'' if pd.isna(r.pretrained) else r.pretrained} | {r.hr:.3f} | {r.ndcg:.3f} | "
        f"{r.how_checked} |"
        for r in published.itertuples()
    ]
    lines += ["", *[f"![{name}]({name}.png)" for name in figures]]
    return "\n".join(lines) + "\n"
