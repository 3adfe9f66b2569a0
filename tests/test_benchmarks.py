"""The benchmark scripts run end to end on a tiny generated dataset and write their tables."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY = "synthetic:150x200x4000"


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_paper_table_times_every_model(tmp_path):
    out = _run(
        "paper_table.py",
        "--dataset",
        TINY,
        "--epochs",
        "1",
        "--batch-size",
        "512",
        "--jobs",
        "1",
        "--out",
        str(tmp_path),
    )
    for model in ("gmf", "mlp", "neumf", "neumf-pre"):
        assert f"| {model} |" in out
    report = (tmp_path / "paper-table-synthetic-150x200x4000-b512-e1.md").read_text()
    assert "Command: `python benchmarks/paper_table.py" in report and "whole table" in report


@pytest.mark.slow
def test_paper_table_in_two_workers_gives_the_same_rows(tmp_path):
    def results(*args: str) -> list[str]:
        out = _run(
            "paper_table.py", "--dataset", TINY, "--epochs", "2", "--out", str(tmp_path), *args
        )
        rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| ")]
        return [(row[0], *row[3:]) for row in rows[1:]]  # model, epoch, HR@10, NDCG@10

    one = results("--jobs", "1")
    assert len(one) == 4
    assert results("--jobs", "2") == one
    report = (tmp_path / "paper-table-synthetic-150x200x4000-b256-e2-j2.md").read_text()
    assert (
        "Command: `python benchmarks/paper_table.py --dataset synthetic:150x200x4000 "
        "--epochs 2 --jobs 2`"
        in report
        and "2 processes of 1 thread" in report
    )


def test_large_batch_compares_settings_over_seeds(tmp_path):
    out = _run(
        "large_batch.py",
        "--dataset",
        TINY,
        "--models",
        "gmf",
        "--epochs",
        "1",
        "--seeds",
        "0",
        "1",
        "--settings",
        "256:0.001",
        "1024:0.004",
        "256:0.001:plain",
        "256:0.001:sparse",
        "--out",
        str(tmp_path),
    )
    assert "| gmf | 256 | 0.001 | fused |" in out and "| gmf | 1024 | 0.004 | fused |" in out
    assert "| gmf | 256 | 0.001 | plain |" in out and "| gmf | 256 | 0.001 | sparse |" in out
    assert (tmp_path / "large-batch-synthetic-150x200x4000.md").is_file()


@pytest.mark.slow
def test_bench_times_the_seed_and_counts_worker_start_up_once(tmp_path):
    from ncf_lib.synthetic import synthetic_ratings

    frame = synthetic_ratings(150, 200, 4000, seed=0)
    path = tmp_path / "ratings.dat"
    path.write_text(
        "".join(
            f"{r.user_id}::{r.item_id}::{r.rating}::{r.timestamp}\n" for r in frame.itertuples()
        )
    )
    out = _run(
        "bench.py",
        "--dataset",
        str(path),
        "--original-batches",
        "5",
        "--out",
        str(tmp_path / "out"),
    )
    for stage in (
        "prepare",
        "epoch",
        "epoch (hand gradients)",
        "evaluate",
        "end to end",
        "peak RSS (MiB)",
    ):
        assert f"| {stage} |" in out
    assert "extrapolated from 5 of" in out and "worker start-up" in out
    assert (tmp_path / "out" / "bench-ratings.dat.md").is_file()
    assert (tmp_path / "out" / "bench-ratings.dat.png").is_file()


def test_train_step_variants_agree_and_are_timed(tmp_path):
    out = _run(
        "train_step.py", "--dataset", TINY, "--steps", "20", "--rounds", "1", "--out", str(tmp_path)
    )
    for variant in ("autograd", "by hand"):
        assert f"| {variant} |" in out
    assert "| compiled |" not in out
    assert "by hand 0.0e+00" in out
    assert (tmp_path / "train-step-synthetic-150x200x4000.md").is_file()


@pytest.mark.slow
def test_train_step_times_the_compiled_step(tmp_path):
    out = _run(
        "train_step.py", "--dataset", TINY, "--model", "gmf", "--compiled",
        "--steps", "5", "--rounds", "1", "--out", str(tmp_path),
    )  # fmt: skip
    assert "| compiled |" in out and "first call s" in out
    difference = float(re.search(r"compiled (\S+)[;.]", out).group(1))
    assert difference <= 1e-4
    assert (tmp_path / "train-step-synthetic-150x200x4000-gmf-compiled.md").is_file()


# A stand-in for guoyang9/NCF's model.py: same constructor and forward, a plain dot product.
REFERENCE_MODEL = """
import torch
from torch import nn


class NCF(nn.Module):
    def __init__(self, user_num, item_num, factor_num, num_layers, dropout, model,
                 GMF_model=None, MLP_model=None):
        super().__init__()
        self.user = nn.Embedding(user_num, factor_num)
        self.item = nn.Embedding(item_num, factor_num)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        if model == "NeuMF-pre":
            self.load_state_dict(GMF_model.state_dict())

    def forward(self, user, item):
        return (self.user(user) * self.item(item)).sum(-1)
"""


def _harness():
    """``benchmarks/guoyang9_on_our_split.py`` as a module."""
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO / "benchmarks"))
    import guoyang9_on_our_split

    return guoyang9_on_our_split


def test_reference_harness_reports_the_best_test_epoch(tmp_path):
    harness = _harness()
    from ncf_lib.ratings import load_ratings
    from ncf_lib.study.grid import build_splits

    (tmp_path / "model.py").write_text(REFERENCE_MODEL)
    ncf = harness.load_reference(tmp_path)
    _, full = build_splits(load_ratings(TINY, progress=False), seed=42)
    rows = {}
    for epochs in (1, 3):
        model, rows[epochs] = harness.train_reference(
            ncf, "GMF", full, seed=0, epochs=epochs, factors=8
        )
        assert harness.metrics_on_test(model, full)[0] == rows[epochs]["HR@10"]  # best state
    assert rows[1]["best test epoch"] == 0
    assert rows[3]["HR@10"] >= rows[1]["HR@10"]  # same seed: epoch 0 is among the three

    out = _run(
        "guoyang9_on_our_split.py",
        "--ncf-repo",
        str(tmp_path),
        "--dataset",
        TINY,
        "--epochs",
        "2",
        "--seeds",
        "0",
        "--factors",
        "8",
        "--out",
        str(tmp_path),
    )
    for kind in harness.MODELS:
        assert f"| {kind} |" in out
    report = (tmp_path / "guoyang9-on-our-split-synthetic-150x200x4000.md").read_text()
    assert "best **test** epoch" in report
    assert "guoyang9/NCF at commit unknown (not a git checkout)" in report


def test_reference_harness_needs_a_checkout(tmp_path):
    with pytest.raises(FileNotFoundError, match="clone of https://github.com/guoyang9/NCF"):
        _harness().load_reference(tmp_path)


def test_fold_in_study_writes_its_table(tmp_path):
    out = _run(
        "fold_in.py", "--dataset", "synthetic:200x300x6000", "--models", "gmf", "--epochs", "1",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert "gmf, 20 held-out users" in out and "folded in" in out
    table = (tmp_path / "fold-in-synthetic_200x300x6000.md").read_text()
    assert "| gmf | trained normally |" in table and "| gmf | folded in |" in table


def test_scale_times_every_stage(tmp_path):
    settings = ["--settings", "256:0.001:adam", "64:0.001:sparse-adam"]
    out = _run("scale.py", "--shape", "300x400x12000", "--steps", "20", "--full-users", "50",
               *settings, "--out", str(tmp_path))  # fmt: skip
    table = (tmp_path / "scale-300x400x12000.md").read_text()
    for stage in ("generate", "parse, second run (from the cache)", "one epoch of negatives",
                  "batch 64, sparse-adam", "full-ranking evaluation, 50 users"):  # fmt: skip
        assert stage in table, stage
    assert "min per epoch" in out


def test_ddp_steps_times_one_process(tmp_path):
    out = _run("ddp_steps.py", "--dataset", TINY, "--steps", "20")
    assert "autograd, 1 process(es)" in out and "hand, 1 process(es)" in out
    assert "MiB per step" in out


@pytest.mark.slow
def test_gpu_check_runs_its_checks_on_the_cpu():
    out = _run("gpu_check.py", "--device", "cpu", "--quick")
    assert "FAILED" not in out
    for check in ("device sampler", "train neumf", "evaluate gmf on cpu = on cpu", "torchrun"):
        assert f"ok     {check}" in out, out


@pytest.mark.slow
def test_engines_times_whole_processes_and_they_agree(tmp_path):
    out = _run("engines.py", "--dataset", TINY, "--epochs", "2", "--out", str(tmp_path))
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| ")][1:]
    assert [(r[0].strip("| "), r[2]) for r in rows] == [
        ("autograd", ""), ("hand", ""), ("compiled", "cold"), ("compiled", "warm")
    ]  # fmt: skip
    hr = {r[0].strip("| ") + r[2]: r[-1].strip(" |") for r in rows}
    assert hr["autograd"] == hr["hand"]  # the same numbers bit for bit
    assert (tmp_path / "engines-synthetic_150x200x4000.md").is_file()
