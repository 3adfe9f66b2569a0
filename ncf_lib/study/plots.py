"""Figures of the studies beyond the paper: a study's curves, HR@K, how the three ways of
measuring order the models, and the original tutorial's speed against this package's. Each
function returns a Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_speed(table: pd.DataFrame) -> Figure:
    """Seconds per stage, the original tutorial against ncf_lib (columns ``stage, original,
    ncf_lib``), log scale."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    y = np.arange(len(table))
    ax.barh(y - 0.2, table["original"], 0.4, label="original tutorial")
    ax.barh(y + 0.2, table["ncf_lib"], 0.4, label="ncf_lib")
    ax.set_yticks(y, table["stage"])
    ax.invert_yaxis()
    ax.set(xscale="log", xlabel="seconds (log scale)", title="Original tutorial vs ncf_lib")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_study(
    results: pd.DataFrame, x: str, title: str, k: int = 10, published: pd.DataFrame | None = None
) -> Figure:
    """HR@K and NDCG@K (means over seeds) against one setting, a line per model.

    Args:
        results: rows of :func:`ncf_lib.study.runner.run_grid` restricted to the study.
        x: the column varied (``factors``, ``num_ng``, ``depth``).
        published: optional rows ``model, factors, hr, ndcg`` drawn as crosses (ML-1M).
    """
    means = results.groupby(["model", x], sort=False)[[f"hr@{k}", f"ndcg@{k}"]].mean()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric, short in zip(axes, (f"hr@{k}", f"ndcg@{k}"), ("hr", "ndcg")):
        for model, part in means.groupby(level=0, sort=False):
            part = part.sort_index(level=1)
            (line,) = ax.plot(part.index.get_level_values(1), part[metric], marker="o", label=model)
            if published is not None and x == "factors":
                pub = published[published["model"] == model]
                ax.plot(pub["factors"], pub[short], "x", ms=9, color=line.get_color())
        ax.set(xlabel=x, ylabel=metric.upper(), title=f"{metric.upper()} vs {x}")
        if x == "factors":
            ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title + ("  (x: published, MovieLens-1M)" if published is not None else ""))
    fig.tight_layout()
    return fig


def plot_hr_at_k(results: pd.DataFrame, k_max: int = 10) -> Figure:
    """HR@K for K = 1..k_max, one line per model (means over seeds)."""
    columns = [f"hr@{k}" for k in range(1, k_max + 1)]
    means = results.groupby("model", sort=False)[columns].mean()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for model, row in means.iterrows():
        ax.plot(range(1, k_max + 1), row.to_numpy(), marker=".", label=model)
    ax.set(xlabel="K", ylabel="HR@K", title="Top-K hit ratio")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


#: The three ways of measuring one metric: ``(column prefix, label)``.
MEASURES = (
    ("", "sampled\n(1 + 99)"),
    ("corrected_", "corrected\nsampled"),
    ("full_", "full\nranking"),
)


def plot_orderings(results: pd.DataFrame, k: int = 10) -> Figure:
    """Models ranked by HR@K and by NDCG@K measured three ways: on 100 sampled candidates,
    corrected from those samples, and on the full ranking. One line per model joins its
    places (1: best; means over seeds), labelled with its values, so a crossing line is a
    model whose order a measure gets wrong.

    Args:
        results: rows with ``model`` and ``{prefix}hr@K``, ``{prefix}ndcg@K`` for every
            prefix of :data:`MEASURES`.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * results["model"].nunique() + 2.2))
    for ax, metric in zip(axes, (f"hr@{k}", f"ndcg@{k}")):
        columns = [prefix + metric for prefix, _ in MEASURES]
        means = results.groupby("model", sort=False)[columns].mean()
        places = means.rank(ascending=False, method="first")
        for model in means.index:
            (line,) = ax.plot(range(len(MEASURES)), places.loc[model], marker="o")
            for x, column in enumerate(columns):
                ax.annotate(
                    f"{means.loc[model, column]:.3f}",
                    (x, places.loc[model, column]),
                    xytext=(0, 6),
                    textcoords="offset points",
                    ha="center",
                    fontsize=7,
                )
            ax.annotate(
                model,
                (0, places.loc[model, columns[0]]),
                xytext=(-10, 0),
                textcoords="offset points",
                ha="right",
                va="center",
                color=line.get_color(),
                fontsize=8,
            )
        ax.set_xticks(range(len(MEASURES)), [label for _, label in MEASURES])
        ax.set_xlim(-0.9, len(MEASURES) - 0.7)
        ax.set_ylim(len(means) + 0.5, 0.3)
        ax.set_yticks(range(1, len(means) + 1))
        ax.set(ylabel="place (1: best)", title=f"Models ordered by {metric.upper()}")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
