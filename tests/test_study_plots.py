"""ncf_lib.study.plots: the studies' figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ncf_lib.study import plots as study_plots  # noqa: E402


def test_plot_speed():
    table = pd.DataFrame(
        {"stage": ["epoch", "eval"], "original": [120.0, 13.0], "ncf_lib": [8.0, 0.3]}
    )
    fig = study_plots.plot_speed(table)
    assert fig.axes[0].get_xscale() == "log" and len(fig.axes[0].patches) == 4


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
