"""Matplotlib figures for the notebooks and the README. Each function returns a Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter, ScalarFormatter

from ncf_lib.errors import ConfigError
from ncf_lib.models import ModelConfig


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
    """Training loss, and validation (dashed, where a history has ``val_hr``) and test HR@K
    per epoch, for one or more runs.

    A circle marks each run's selected epoch (``best_epochs``) on both curves, so the reader
    sees why that epoch was chosen and how far it is from the test curve's maximum.
    """
    fig, (loss_ax, hr_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, hist in histories.items():
        (line,) = loss_ax.plot(hist["epoch"], hist["loss"], marker=".", label=name)
        color = line.get_color()
        curves = [("test_hr", "-", f"{name} test")]
        if "val_hr" in hist:
            curves.append(("val_hr", "--", f"{name} validation"))
        chosen = None
        if best_epochs and name in best_epochs:
            chosen = hist.loc[hist["epoch"] == best_epochs[name]].iloc[0]
        for column, style, label in curves:
            hr_ax.plot(hist["epoch"], hist[column], style, marker=".", color=color, label=label)
            if chosen is not None:
                hr_ax.plot(chosen["epoch"], chosen[column], "o", ms=9, mfc="none", color=color)
    loss_ax.set(xlabel="epoch", ylabel="training loss (BCE)", title="Training loss")
    hr_ax.set(
        xlabel="epoch",
        ylabel=f"HR@{k}",
        title=f"HR@{k} (dashed: validation; circle: epoch chosen on it)",
    )
    for ax in (loss_ax, hr_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


#: A layer of a network drawing: its label and the layers that feed it.
Layer = tuple[str, list["Layer"]]


def architecture(name: str, n_users: int, n_items: int, config: ModelConfig) -> Layer:
    """The ``gmf``, ``mlp`` or ``neumf`` network as a tree of labelled layers, output first."""
    if name not in ("gmf", "mlp", "neumf"):
        raise ConfigError(f"no drawing of {name!r}; expected gmf, mlp or neumf")

    def embeddings(prefix: str, dim: int) -> list[Layer]:
        return [(f"{prefix}{who} embedding\n{n} x {dim}", [(f"{who} id", [])])
                for who, n in (("user", n_users), ("item", n_items))]  # fmt: skip

    def branches(gmf_prefix: str, mlp_prefix: str) -> dict[str, Layer]:
        gmf = (
            f"element-wise product ({config.factor_num})",
            embeddings(gmf_prefix, config.factor_num),
        )
        mlp = (f"concatenate ({config.layers[0]})", embeddings(mlp_prefix, config.layers[0] // 2))
        for n_in, n_out in zip(config.layers, config.layers[1:]):
            mlp = (f"linear {n_in} -> {n_out}, ReLU", [mlp])
        return {"gmf": gmf, "mlp": mlp}

    if name == "neumf":
        fused = config.factor_num + config.layers[-1]
        parts = list(branches("GMF ", "MLP ").values())
        return ("logit", [(f"linear {fused} -> 1", [(f"concatenate ({fused})", parts)])])
    width = config.factor_num if name == "gmf" else config.layers[-1]
    return ("logit", [(f"linear {width} -> 1", [branches("", "")[name]])])


def plot_architecture(root: Layer, title: str = "") -> Figure:
    """Boxes and arrows from the inputs (bottom) to the output (top) of a :data:`Layer` tree."""
    boxes: list[list] = []  # x, y, label, index of the layer it feeds
    leaves = 0

    def place(layer: Layer, parent: int | None) -> int:
        nonlocal leaves
        index = len(boxes)
        boxes.append([0.0, 0, layer[0], parent])
        kids = [place(child, index) for child in layer[1]]
        if kids:
            boxes[index][:2] = [
                np.mean([boxes[k][0] for k in kids]),
                1 + max(boxes[k][1] for k in kids),
            ]
        else:
            boxes[index][0], leaves = float(leaves), leaves + 1
        return index

    place(root, None)
    top = max(box[1] for box in boxes)
    fig, ax = plt.subplots(figsize=(1.9 * leaves + 0.6, 0.75 * top + 1.2))
    for x, y, label, parent in boxes:
        style = {"boxstyle": "round", "fc": "#e8eef8" if y else "#f4f4f4", "ec": "#456"}
        ax.text(x, y, label, ha="center", va="center", fontsize=8, bbox=style)
        if parent is not None:
            end = boxes[parent][:2]
            ax.annotate("", xy=(end[0], end[1] - 0.3), xytext=(x, y + 0.3),
                        arrowprops={"arrowstyle": "->", "color": "#456"})  # fmt: skip
    ax.set(xlim=(-0.8, leaves - 0.2), ylim=(-0.5, top + 0.5), title=title)
    ax.axis("off")
    return fig


#: NeuMF as He et al. (2017, Figure 3) draw it: ``{key: (label, x, y)}`` from the one-hot
#: inputs (bottom) to the training target (top), and the arrows between them.
NEUMF_FIGURE = {
    "user": ("User (u)", 1.0, 0), "item": ("Item (i)", 3.0, 0),
    "mf_user": ("MF User Vector", 0.0, 1), "mf_item": ("MF Item Vector", 1.3, 1),
    "mlp_user": ("MLP User Vector", 2.7, 1), "mlp_item": ("MLP Item Vector", 4.0, 1),
    "gmf": ("GMF Layer\n(element-wise product)", 0.65, 2.2),
    "mlp_1": ("MLP Layer 1\n(ReLU)", 3.35, 2.2), "mlp_x": ("MLP Layer X\n(ReLU)", 3.35, 3.4),
    "neumf": ("NeuMF Layer", 2.0, 4.4), "score": ("Score $\\hat y_{ui}$", 2.0, 5.4),
    "target": ("Target $y_{ui}$\n(log loss)", 2.0, 6.4),
}  # fmt: skip
NEUMF_ARROWS = [
    ("user", "mf_user"), ("user", "mlp_user"), ("item", "mf_item"), ("item", "mlp_item"),
    ("mf_user", "gmf"), ("mf_item", "gmf"), ("mlp_user", "mlp_1"), ("mlp_item", "mlp_1"),
    ("mlp_1", "mlp_x"), ("gmf", "neumf"), ("mlp_x", "neumf"), ("neumf", "score"),
    ("score", "target"),
]  # fmt: skip
#: The paper's names of the figure's levels, at their heights.
NEUMF_LEVELS = {"Input Layer (Sparse)": 0, "Embedding Layer": 1, "Neural CF Layers": 2.8,
                "Output Layer": 5.4, "Training": 6.4}  # fmt: skip


def plot_neumf_figure() -> Figure:
    """NeuMF's two towers meeting at the output, labelled as He et al. (2017, Figure 3)
    label them (:data:`NEUMF_FIGURE`); the dotted arrow stands for the hidden layers between
    the first and the last."""
    fig, ax = plt.subplots(figsize=(8, 6))
    for key, (label, x, y) in NEUMF_FIGURE.items():
        colour = (
            "#f4f4f4"
            if y == 0
            else "#fde7d4"
            if key in ("mf_user", "mf_item", "gmf")
            else "#e8eef8"
        )
        ax.text(x, y, label, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round", "fc": colour, "ec": "#456"})  # fmt: skip
    for start, end in NEUMF_ARROWS:
        (_, x0, y0), (_, x1, y1) = NEUMF_FIGURE[start], NEUMF_FIGURE[end]
        line = {"arrowstyle": "->", "color": "#456", "linestyle": ":" if end == "mlp_x" else "-"}
        ax.annotate("", xy=(x1, y1 - 0.3), xytext=(x0, y0 + 0.3), arrowprops=line)
    for level, y in NEUMF_LEVELS.items():
        ax.text(-2.3, y, level, ha="left", va="center", fontsize=8, style="italic")
    ax.set(xlim=(-2.4, 4.7), ylim=(-0.6, 6.9), title="NeuMF (He et al. 2017, Figure 3)")
    ax.axis("off")
    return fig


def plot_results(
    results: pd.DataFrame,
    published: pd.DataFrame | None = None,
    k: int = 10,
    labels: tuple[str, str] = ("ours", "published"),
) -> Figure:
    """HR@K and NDCG@K per model, ours beside published numbers.

    Args:
        results: columns ``model, hr, ndcg``.
        published: optional columns ``model, hr, ndcg`` (e.g. the paper's).
        labels: the legend's names of the two (say when they differ in data or protocol).
    """
    ours, theirs = labels
    tables = {ours: results} | ({theirs: published} if published is not None else {})
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
