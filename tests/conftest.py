"""Fixtures and helpers shared by several test files: small generated data, the real
MovieLens-100K when it is beside us, command-line runs and their one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from ncf_lib.cli import main
from ncf_lib.dataset import build_dataset
from ncf_lib.models import ModelConfig
from ncf_lib.ratings import (
    RATING_DTYPES,
    Ratings,
    load_ratings,
)
from ncf_lib.study.grid import (
    RunSpec,
    build_splits,
)
from ncf_lib.study.runner import run_grid
from ncf_lib.synthetic import synthetic_movies, synthetic_ratings
from ncf_lib.train import TrainConfig

REPO = Path(__file__).resolve().parent.parent
ML100K = REPO.parent / "shared" / "data" / "ml-100k"


@pytest.fixture(scope="session")
def small_ratings() -> Ratings:
    """200 users x 300 items x 6,000 generated ratings."""
    frame = synthetic_ratings(200, 300, 6_000, seed=1)
    return Ratings(frame, synthetic_movies(frame["item_id"].unique()), "synthetic:200x300x6000")


@pytest.fixture(scope="session")
def small_data(small_ratings):
    return build_dataset(small_ratings, num_ng_test=99, seed=7)


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    if not (ML100K / "u.data").is_file():
        pytest.skip(
            f"real MovieLens-100K not found at {ML100K} (GroupLens' files are not "
            "redistributed; extract ml-100k.zip there to run this test)"
        )
    return ML100K


SAMPLE = "synthetic:120x200x3000"


TRAIN = ["train", "--dataset", SAMPLE, "--epochs", "1", "--no-progress"]


def run_train(tmp_path, *extra):
    return main(
        TRAIN + ["--out", str(tmp_path / "ck"), "--log-dir", str(tmp_path / "runs"), *extra]
    )


def ratings_frame(rows):
    cols = ["user_id", "item_id", "rating", "timestamp"]
    return pd.DataFrame(rows, columns=cols).astype(RATING_DTYPES)


@pytest.fixture(scope="module")
def splits(small_ratings):
    return build_splits(small_ratings, seed=7)


QUICK = dict(progress=False, batch_size=256)


@pytest.fixture(scope="module")
def wide():
    """5,000 users x 1,000 items: more users than one chunk of the candidate sampler
    (4,194 users at 1,000 items), of candidate scoring (2,048) and of full ranking (2,097)."""
    frame = synthetic_ratings(5000, 1000, 60_000, seed=3)
    return build_dataset(Ratings(frame, None, "synthetic:5000x1000x60000"), seed=11)


def ratings_of(rows) -> Ratings:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Ratings(frame.astype({"rating": "float32"}), None, "x")


QUIET = ["--no-progress", "--no-log"]


def train_argv(tmp_path, *extra):
    return ["train", "--dataset", SAMPLE, "--epochs", "1", "--model", "gmf", *QUIET,
            "--out", str(tmp_path / "ck"), *extra]  # fmt: skip


def one_line_error(argv, capsys, *needles):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return captured.out


def ratings_file(path: Path, rows, header: str | None = None) -> Path:
    lines = ([header] if header else []) + [",".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def dense_rows(users, items_per_user=6, n_items=40, user_ids=None):
    """Every user rates ``items_per_user`` items at distinct times."""
    rows = []
    for u in range(users):
        uid = user_ids[u] if user_ids is not None else u + 1
        for j in range(items_per_user):
            rows.append((uid, (u * 7 + j * 3) % n_items + 1, 4, 1000 * u + j))
    return rows


@pytest.fixture(scope="module")
def grid_csv(tmp_path_factory):
    data, full = build_splits(load_ratings("synthetic:100x300x2500"), seed=42)
    path = tmp_path_factory.mktemp("grid") / "results.csv"
    specs = [RunSpec("itempop", 8, s, 1, refit=True) for s in (0, 1, 2)]
    run_grid(specs, data, path, full=full)
    return path, specs, data, full


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs (as root; skipped otherwise), filled up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    (mount / "out").mkdir()
    (mount / "log").mkdir()
    with open(mount / "filler", "wb") as f:
        try:
            f.write(b"\0" * (300 << 10))
        except OSError:
            pass
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


SIZES = ModelConfig(factor_num=8, layers=(16, 8))


def tiny_run(epochs: int = 2) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=1024, progress=False)


METRICS = ["loss", "val_hr", "val_ndcg", "test_hr", "test_ndcg"]


@pytest.fixture(scope="module")
def ml_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ck")
    argv = ["train", "--dataset", "synthetic:120x200x3000", "--model", "neumf", "--epochs", "1",
            "--no-progress", "--no-log", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return next(out.glob("*.pt"))


def missing_tool(reason: str) -> None:
    """Skip a test whose tool is absent, with the reason; fail under CI, which provides it."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI provides it: see .ci/run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Selenium (a skip without it, a failure under CI)."""
    names = ("chromium", "chromium-browser", "google-chrome")
    chromium = next(filter(None, map(shutil.which, names)), None)
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        missing_tool(
            "Chromium and ChromeDriver are not installed (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,2000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
