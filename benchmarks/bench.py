"""Speed of ncf_lib against the original tutorial, stage by stage, on the same data and machine.

    python benchmarks/bench.py                      # generated MovieLens-1M-shaped data
    python benchmarks/bench.py --dataset ../shared/data/ml-100k
    python benchmarks/bench.py --full-original  # the original tutorial's whole epoch (about 4 min)

Each side runs in its own child process (so each peak RSS is its own), on the same
``ratings.dat``, with the original tutorial's hyper-parameters: NeuMF, factor 32, layers
[64, 32, 16, 8], batch 256, 4 negatives, 100 test negatives, Adam lr 0.001. The original
tutorial's training epoch is timed over its first ``--original-batches`` batches and
extrapolated to the whole epoch unless ``--full-original`` is given.

ncf_lib's epoch is timed twice: with the plain autograd loop (:func:`ncf_lib.train.train_epoch`,
what the notebooks and ``make train`` run) and with the opt-in hand-written gradients
(:mod:`ncf_lib.scale.hand_gradients`, ``--engine hand``). "end to end" is,
for ncf_lib, one whole ``python -m ncf_lib train --epochs 1`` process on the file (start-up,
parsing, split, one epoch, evaluation, checkpoint), and for the original tutorial the sum of
its stages. Prints a table, and writes it (with the command) and a bar chart to ``--out``."""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_pipeline import write_dat, write_ml1m_like  # noqa: E402

STAGES = ["prepare", "epoch", "epoch (hand gradients)", "evaluate", "end to end"]


def run_original(path: str, original_batches: int | None, queue) -> None:
    import original_tutorial as S

    # This child was spawned, which would make the original tutorial's DataLoader spawn its
    # workers too
    # (each one re-importing torch and unpickling 5 M samples): in the notebook, on Linux
    # and Colab, they are forked. Fork them here as well.
    multiprocessing.set_start_method("fork", force=True)
    torch.manual_seed(42)
    out = {}
    clock = time.perf_counter()
    ratings = S.read_ratings_dat(path)
    data = S.NCFData(ratings)
    train_loader, test_loader = data.get_train_instance(), data.get_test_instance()
    out["prepare"] = time.perf_counter() - clock
    n_users, n_items = ratings["user_id"].nunique() + 1, ratings["item_id"].nunique() + 1
    model = S.NeuMF(n_users, n_items)
    total = len(train_loader)
    clock = time.perf_counter()
    ran, first = S.train_batches(model, train_loader, max_batches=original_batches)
    seconds = time.perf_counter() - clock
    # The workers' start-up (up to the first batch) happens once per epoch: count it once,
    # and extrapolate only the steady rate of the batches after it.
    out["epoch"] = first + (seconds - first) * (total - 1) / max(ran - 1, 1)
    out["epoch_note"] = (
        ""
        if ran == total
        else (
            f"extrapolated from {ran:,} of {total:,} batches (worker start-up {first:.1f} s, "
            f"then {(seconds - first) / max(ran - 1, 1) * 1e3:.1f} ms per batch)"
        )
    )
    out["rows"] = len(train_loader.dataset)
    model.eval()
    clock = time.perf_counter()
    with torch.no_grad():
        S.metrics(model, test_loader, 10)
    out["evaluate"] = time.perf_counter() - clock
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(out)


def run_ours(path: str, queue) -> None:
    from ncf_lib.dataset import build_dataset
    from ncf_lib.metrics import evaluate
    from ncf_lib.models import build_model
    from ncf_lib.ratings import Ratings, read_ratings
    from ncf_lib.sampling import batches, epoch_arrays
    from ncf_lib.scale import hand_gradients
    from ncf_lib.train import TrainConfig, make_optimizer, train_epoch

    torch.manual_seed(42)
    out = {}
    clock = time.perf_counter()
    data = build_dataset(Ratings(read_ratings(path), None, path), num_ng_test=100)
    out["prepare"] = time.perf_counter() - clock
    config = TrainConfig(progress=False)
    rng = np.random.default_rng(42)
    for stage, run_epoch in (
        ("epoch", train_epoch),
        ("epoch (hand gradients)", hand_gradients.train_epoch),
    ):
        torch.manual_seed(42)
        model = build_model("neumf", data.n_users, data.n_items)
        optimizer = make_optimizer(model, config)
        clock = time.perf_counter()
        tensors = epoch_arrays(data, config.num_ng, rng)
        run_epoch(model, optimizer, batches(*tensors, batch_size=config.batch_size))
        out[stage] = time.perf_counter() - clock
    out["epoch_note"] = ""
    out["rows"] = tensors[0].shape[0]
    model.eval()
    clock = time.perf_counter()
    evaluate(model.score, data.test, 10)
    out["evaluate"] = time.perf_counter() - clock
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(out)


def whole_process(path: str) -> float:
    """Seconds of one ``python -m ncf_lib train --epochs 1`` process on ``path``."""
    with tempfile.TemporaryDirectory() as out:
        clock = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "ncf_lib",
                "train",
                "--dataset",
                path,
                "--epochs",
                "1",
                "--no-log",
                "--no-progress",
                "--out",
                out,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - clock


def in_child(target, *args) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    while True:  # a child that dies (an error, out of memory) must not leave us waiting
        try:
            result = queue.get(timeout=1.0)
            break
        except Empty:
            if not proc.is_alive():
                raise RuntimeError(
                    f"{target.__name__} failed (exit code {proc.exitcode})"
                ) from None
    proc.join()
    return result


def table(orig: dict, ours: dict) -> pd.DataFrame:
    rows = []
    for stage in STAGES:
        rows.append(
            {
                "stage": stage,
                "original": orig[stage],
                "ncf_lib": ours[stage],
                "speed-up": orig[stage] / ours[stage],
            }
        )
    frame = pd.DataFrame(rows)
    epochs = frame["stage"].str.startswith("epoch")
    frame["original rows/s"] = np.where(epochs, orig["rows"] / frame["original"], np.nan)
    frame["ncf_lib rows/s"] = np.where(epochs, ours["rows"] / frame["ncf_lib"], np.nan)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="ratings file or MovieLens folder (default: generated)")
    parser.add_argument(
        "--original-batches",
        type=int,
        default=2000,
        help="original-tutorial batches to time before extrapolating (default 2000)",
    )
    parser.add_argument(
        "--full-original", action="store_true", help="time the original tutorial's whole epoch"
    )
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "ratings.dat")
        if args.dataset:  # the original tutorial reads only '::' files: rewrite any format as one
            from ncf_lib.ratings import find_ratings_file, read_ratings

            write_dat(read_ratings(find_ratings_file(args.dataset)), Path(path))
        else:
            write_ml1m_like(Path(path), seed=0)
        print(f"data: {path}", flush=True)
        ours = in_child(run_ours, path)
        print("ncf_lib done", flush=True)
        orig = in_child(run_original, path, None if args.full_original else args.original_batches)
        print("original tutorial done", flush=True)
        ours["end to end"] = whole_process(path)
    orig["epoch (hand gradients)"] = orig["epoch"]  # the original tutorial has autograd only
    orig["end to end"] = orig["prepare"] + orig["epoch"] + orig["evaluate"]

    frame = table(orig, ours)
    rss = pd.DataFrame(
        [
            {
                "stage": "peak RSS (MiB)",
                "original": orig["peak_rss_mib"],
                "ncf_lib": ours["peak_rss_mib"],
                "speed-up": orig["peak_rss_mib"] / ours["peak_rss_mib"],
            }
        ]
    )
    shown = pd.concat([frame, rss], ignore_index=True)
    text = markdown_table(shown)
    note = orig["epoch_note"]
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    command = "python benchmarks/bench.py " + " ".join(sys.argv[1:])
    print(text)
    print(f"epoch rows: original tutorial {orig['rows']:,}, ncf_lib {ours['rows']:,}; ", end="")
    print(f"original tutorial's epoch {note or 'timed in full'}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "bench-" + (Path(args.dataset).name if args.dataset else "ml1m-shaped")
    (out / f"{name}.md").write_text(
        f"# {name}\n\nCommand: `{command}`\n\nMachine: {machine}\n\n{text}\n\n"
        f"Original tutorial's epoch: {note or 'timed in full'}. "
        "Seconds, lower is better; speed-up = original / ncf_lib.\n"
    )
    from ncf_lib.study.plots import plot_speed

    plot_speed(frame[["stage", "original", "ncf_lib"]]).savefig(out / f"{name}.png", dpi=120)
    print(f"wrote {out / name}.md and .png")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table, numbers with 3 significant digits (whole numbers from 1,000
    up), blanks for NaN."""

    def cell(v) -> str:
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:,.0f}" if abs(v) >= 999.5 else f"{v:,.3g}"
        return str(v)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
