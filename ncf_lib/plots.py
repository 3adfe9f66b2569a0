"""Matplotlib figures for the notebooks and the README. Each function returns a Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter


def plot_long_tail(ratings: pd.DataFrame, title: str = "") -> Figure:
    """Item popularity by rank and user activity, both on log scales: the long tail."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    popularity = np.sort(ratings["item_id"].value_counts().to_numpy())[::-1]
    left.loglog(np.arange(1, popularity.size + 1), popularity)
    left.set(
        xlabel="item rank (most rated first)", ylabel="ratings of the item", title="Item popularity"
    )
    share = popularity[: max(1, popularity.size // 10)].sum() / popularity.sum()
    left.annotate(
        f"top 10% of items: {share:.0%} of ratings", xy=(0.05, 0.08), xycoords="axes fraction"
    )
    activity = ratings["user_id"].value_counts().to_numpy()
    right.hist(activity, bins=np.logspace(np.log10(activity.min()), np.log10(activity.max()), 40))
    right.set(xscale="log", xlabel="ratings of the user", ylabel="users", title="User activity")
    right.xaxis.set_major_formatter(ScalarFormatter())
    right.xaxis.set_minor_formatter(NullFormatter())
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(
    histories: dict[str, pd.DataFrame], k: int = 10, best_epochs: dict[str, int] | None = None
) -> Figure:
    """Training loss and test HR@K per epoch for one or more runs.

    A dot marks each run's selected epoch (``best_epochs``), so the gap between the chosen
    epoch and the curve's maximum is visible.
    """
    fig, (loss_ax, hr_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, hist in histories.items():
        (line,) = loss_ax.plot(hist["epoch"], hist["loss"], marker=".", label=name)
        hr_ax.plot(hist["epoch"], hist["test_hr"], marker=".", color=line.get_color(), label=name)
        if best_epochs and name in best_epochs:
            row = hist.loc[hist["epoch"] == best_epochs[name]].iloc[0]
            hr_ax.plot(row["epoch"], row["test_hr"], "o", ms=9, mfc="none", color=line.get_color())
    loss_ax.set(xlabel="epoch", ylabel="training loss (BCE)", title="Training loss")
    hr_ax.set(
        xlabel="epoch",
        ylabel=f"test HR@{k}",
        title=f"Test HR@{k} (circle: epoch chosen on validation)",
    )
    for ax in (loss_ax, hr_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_results(
    results: pd.DataFrame, published: pd.DataFrame | None = None, k: int = 10
) -> Figure:
    """HR@K and NDCG@K per model, ours beside published numbers.

    Args:
        results: columns ``model, hr, ndcg``.
        published: optional columns ``model, hr, ndcg`` (e.g. the paper's).
    """
    tables = {"ours": results} | ({"published": published} if published is not None else {})
    models = list(dict.fromkeys(results["model"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.8 / len(tables)
    for ax, metric in zip(axes, ("hr", "ndcg")):
        for j, (label, table) in enumerate(tables.items()):
            values = table.set_index("model")[metric].reindex(models)
            bars = ax.bar(
                np.arange(len(models)) + (j - (len(tables) - 1) / 2) * width,
                values.to_numpy(dtype=float),
                width,
                label=label,
            )
            ax.bar_label(bars, fmt="%.3f", fontsize=7)
        ax.set_xticks(np.arange(len(models)), models, rotation=15)
        ax.set(ylabel=f"{metric.upper()}@{k}", title=f"{metric.upper()}@{k} by model")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.2)  # room for the legend above the bars
        ax.legend(loc="upper left", ncols=len(tables), fontsize=8)
    fig.tight_layout()
    return fig
