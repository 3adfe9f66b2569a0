"""ncf_lib.plots: the figures the notebooks draw."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ncf_lib import plots  # noqa: E402
from ncf_lib.errors import ConfigError  # noqa: E402
from ncf_lib.models import ModelConfig, build_model  # noqa: E402


def test_plot_long_tail(small_ratings):
    """What a reader sees: item counts falling with rank on log-log axes, and a histogram of
    user activity that accounts for every user."""
    frame = small_ratings.ratings
    fig = plots.plot_long_tail(frame, title="tiny")
    left, right = fig.axes
    assert left.get_xscale() == left.get_yscale() == "log" and right.get_xscale() == "log"
    (curve,) = left.lines
    counts = curve.get_ydata()
    assert counts[0] == frame["item_id"].value_counts().max() and (counts[:-1] >= counts[1:]).all()
    assert len(counts) == frame["item_id"].nunique()
    assert sum(bar.get_height() for bar in right.patches) == frame["user_id"].nunique()


def test_plot_history_marks_the_selected_epoch():
    """One loss and one HR line per run, in the same colour, and a marker on the selected
    epoch's test HR of the run that has one."""
    hist = pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.5, 0.4, 0.3], "test_hr": [0.3, 0.5, 0.4]})
    runs = {"a": hist, "b": hist.assign(test_hr=hist.test_hr - 0.1)}
    fig = plots.plot_history(runs, best_epochs={"a": 3})
    loss_ax, hr_ax = fig.axes
    curves = [line for line in hr_ax.lines if len(line.get_xdata()) == 3]
    markers = [line for line in hr_ax.lines if len(line.get_xdata()) == 1]
    assert len(loss_ax.lines) == len(curves) == 2 and len(markers) == 1
    assert (list(markers[0].get_xdata()), list(markers[0].get_ydata())) == ([3], [0.4])
    assert markers[0].get_color() == curves[0].get_color() != curves[1].get_color()
    assert [list(c.get_ydata()) for c in curves] == [list(r["test_hr"]) for r in runs.values()]


def test_plot_history_draws_validation_beside_test():
    """With ``val_hr`` in a history, a dashed validation curve beside the test curve, and the
    selected epoch circled on both."""
    hist = pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.5, 0.4, 0.3],
                         "val_hr": [0.2, 0.6, 0.5], "test_hr": [0.3, 0.5, 0.7]})  # fmt: skip
    fig = plots.plot_history({"GMF": hist}, best_epochs={"GMF": 2})
    hr_ax = fig.axes[1]
    curves = {line.get_label(): line for line in hr_ax.lines if len(line.get_xdata()) == 3}
    assert set(curves) == {"GMF test", "GMF validation"}
    assert list(curves["GMF validation"].get_ydata()) == [0.2, 0.6, 0.5]
    assert curves["GMF validation"].get_linestyle() == "--"
    assert curves["GMF test"].get_linestyle() == "-"
    circles = sorted(line.get_ydata()[0] for line in hr_ax.lines if len(line.get_xdata()) == 1)
    assert circles == [0.5, 0.6]  # epoch 2 on the test and the validation curve


@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf"])
def test_architecture_follows_the_model(name):
    """Every embedding of the model is drawn with its shape, every tower layer with its widths,
    and the output layer takes what the model's output layer takes."""
    config = ModelConfig(factor_num=12, layers=(40, 20, 10))
    model = build_model(name, 7, 9, config)
    tree = plots.architecture(name, 7, 9, config)
    labels = []

    def walk(layer):
        labels.append(layer[0])
        for child in layer[1]:
            walk(child)

    walk(tree)
    tables = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    drawn = sorted(tuple(map(int, label.split("\n")[1].split(" x "))) for label in labels
                   if "embedding" in label)  # fmt: skip
    assert drawn == sorted(tuple(t.weight.shape) for t in tables)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    sizes = [tuple(map(int, label.split(",")[0][7:].split(" -> "))) for label in labels
             if label.startswith("linear")]  # fmt: skip
    assert sorted(sizes) == sorted((m.in_features, m.out_features) for m in linears)
    assert labels.count("user id") == labels.count("item id") == len(tables) // 2
    fig = plots.plot_architecture(tree, name)
    assert sorted(t.get_text() for t in fig.axes[0].texts if t.get_text()) == sorted(labels)


def test_architecture_of_another_model_is_refused():
    with pytest.raises(ConfigError, match="no drawing of 'mf'; expected gmf, mlp or neumf"):
        plots.architecture("mf", 3, 4, ModelConfig())


def test_plot_results_with_and_without_published():
    ours = pd.DataFrame({"model": ["GMF", "NeuMF"], "hr": [0.6, 0.7], "ndcg": [0.3, 0.4]})
    fig = plots.plot_results(ours)
    assert len(fig.axes[0].patches) == 2
    paper = pd.DataFrame({"model": ["NeuMF"], "hr": [0.71], "ndcg": [0.42]})
    fig = plots.plot_results(ours, paper)
    assert len(fig.axes[0].patches) == 4  # the missing GMF paper bar is NaN, not dropped
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["GMF", "NeuMF"]


def test_plot_results_names_both_sides_in_the_legend():
    ours = pd.DataFrame({"model": ["NeuMF"], "hr": [0.7], "ndcg": [0.4]})
    fig = plots.plot_results(ours, ours, labels=("ours: ml-100k", "paper: MovieLens-1M"))
    for ax in fig.axes:
        names = [t.get_text() for t in ax.get_legend().get_texts()]
        assert names == ["ours: ml-100k", "paper: MovieLens-1M"]


def test_the_neumf_figure_has_the_papers_labels_and_two_towers():
    fig = plots.plot_neumf_figure()
    texts = {t.get_text() for t in fig.axes[0].texts}
    for label in ("MF User Vector", "MLP Item Vector", "NeuMF Layer", "Embedding Layer"):
        assert label in texts
    arrows = plots.NEUMF_ARROWS
    into = lambda key: {s for s, e in arrows if e == key}  # noqa: E731
    assert into("gmf") == {"mf_user", "mf_item"} and into("mlp_1") == {"mlp_user", "mlp_item"}
    assert into("neumf") == {"gmf", "mlp_x"}  # the towers meet only at the NeuMF layer
    drawn = [t for t in fig.axes[0].texts if getattr(t, "arrow_patch", None) is not None]
    assert len(drawn) == len(arrows)
