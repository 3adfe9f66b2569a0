"""Plotting functions on tiny data, the notebooks' settings, the published numbers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ncf_lib import plots  # noqa: E402
from ncf_lib.errors import ConfigError  # noqa: E402
from ncf_lib.models import ModelConfig, build_model  # noqa: E402
from ncf_lib.study import plots as study_plots  # noqa: E402
from ncf_lib.study.published import published_ml1m  # noqa: E402
from ncf_lib.tutorial import SAMPLE_DATASET, settings  # noqa: E402


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


def test_plot_speed():
    table = pd.DataFrame(
        {"stage": ["epoch", "eval"], "original": [120.0, 13.0], "ncf_lib": [8.0, 0.3]}
    )
    fig = study_plots.plot_speed(table)
    assert fig.axes[0].get_xscale() == "log" and len(fig.axes[0].patches) == 4


@pytest.mark.parametrize("value, sample", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_settings_switch_on_ncf_sample(monkeypatch, value, sample):
    monkeypatch.setenv("NCF_SAMPLE", value)
    monkeypatch.delenv("NCF_DATASET", raising=False)
    s = settings("ml-1m", epochs=7, sample_epochs=2)
    assert s.sample is sample
    assert s.dataset == (SAMPLE_DATASET if sample else "ml-1m")
    assert s.epochs == (2 if sample else 7)


def test_settings_default_to_movielens_100k(monkeypatch):
    monkeypatch.delenv("NCF_SAMPLE", raising=False)
    monkeypatch.delenv("NCF_DATASET", raising=False)
    assert (settings().dataset, settings().epochs) == ("ml-100k", 10)


def test_settings_dataset_override(monkeypatch):
    monkeypatch.setenv("NCF_DATASET", "/some/ml-100k")
    assert settings("ml-1m").dataset == "/some/ml-100k"


@pytest.mark.parametrize("epochs", [0, 2.5, "10", True])
def test_settings_refuse_a_bad_epoch_count(monkeypatch, epochs):
    monkeypatch.delenv("NCF_SAMPLE", raising=False)
    with pytest.raises(ConfigError, match=f"EPOCHS = {epochs!r}: expected a whole number"):
        settings(epochs=epochs)


def test_published_numbers_have_sources():
    table = published_ml1m()
    assert {"source", "model", "hr", "ndcg", "how_checked"} <= set(table.columns)
    assert table["hr"].between(0, 1).all() and table["how_checked"].notna().all()
    paper = table[table["source"].str.startswith("He et al.")]
    assert set(paper["model"]) == {"MLP", "NeuMF"}


def _study_rows():
    rows = []
    for model in ("gmf", "neumf"):
        for f in (8, 16, 32):
            for seed in (0, 1):
                row = {"model": model, "factors": f, "seed": seed, "ndcg@10": 0.2 + f / 1000}
                row.update({f"hr@{k}": 0.05 * k + f / 1000 + seed / 100 for k in range(1, 11)})
                rows.append(row)
    return pd.DataFrame(rows)


def test_plot_study_averages_seeds_and_marks_published():
    published = pd.DataFrame({"model": ["neumf"], "factors": [32], "hr": [0.7], "ndcg": [0.42]})
    rows = _study_rows().sample(frac=1.0, random_state=0)  # any order of runs
    fig = study_plots.plot_study(rows, "factors", "tiny", published=published)
    hr_ax = fig.axes[0]
    gmf_line = hr_ax.lines[0]
    assert list(gmf_line.get_xdata()) == [8, 16, 32]
    assert gmf_line.get_ydata()[0] == pytest.approx(0.5 + 0.008 + 0.005)  # mean of 2 seeds
    assert any(list(line.get_xdata()) == [32] for line in hr_ax.lines[1:])  # the cross


def test_plot_hr_at_k():
    fig = study_plots.plot_hr_at_k(_study_rows())
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[0].lines[0].get_xdata()) == 10
