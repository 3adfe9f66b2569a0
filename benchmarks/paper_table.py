"""Time the paper's table: GMF, MLP, NeuMF and NeuMF with pre-training, on one machine.

    python benchmarks/paper_table.py                               # original settings, batch 256
    python benchmarks/paper_table.py --jobs 1                      # in one process, in turn
    python benchmarks/paper_table.py --batch-size 2048 --lr 0.004  # the opt-in large batch
    python benchmarks/paper_table.py --dataset ../shared/data/ml-100k --epochs 20

Generated MovieLens-1M-shaped data by default. The original tutorial's model settings (32
factors, MLP tower [64, 32, 16, 8], 4 negatives, 99 test negatives); each model trains
``--epochs`` epochs with validation and test evaluated after every epoch, the epoch chosen
on validation; NeuMF with pre-training reuses the GMF and MLP just trained and fine-tunes
with the paper's SGD (:data:`ncf_lib.pretraining.FINETUNE`, learning rate scaled like
``--lr``). With ``--jobs 2`` (the default on 2 cores or more) two single-thread processes
share the work. Prints one row per model (seconds, seconds per epoch, test HR@10 / NDCG@10
at the selected epoch) and the total, and writes them with the command to ``--out``."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import torch

from ncf_lib.dataset import build_dataset
from ncf_lib.pretraining import FINETUNE, pretrain_neumf
from ncf_lib.ratings import load_ratings
from ncf_lib.train import TrainConfig, train_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import markdown_table  # noqa: E402

MODELS = ("gmf", "mlp", "neumf", "neumf-pre")


def train_in_order(
    names, data, config: TrainConfig, handoff=None, threads: int | None = None
) -> list[dict]:
    """Train ``names`` one after the other; one row per model (seconds, selected epoch, test
    HR@10 / NDCG@10). ``neumf-pre`` fine-tunes the GMF and MLP trained before it, taking the
    GMF from ``handoff`` (a queue) when another process trained it; a GMF trained here is
    put on ``handoff``."""
    if threads is not None:
        torch.set_num_threads(threads)
    fits, rows = {}, []
    for name in names:
        clock = time.perf_counter()
        if name == "neumf-pre":
            gmf = fits["gmf"].model if "gmf" in fits else handoff.get()
            if gmf is None:
                raise RuntimeError("no GMF to pre-train from: its process failed (above)")
            scaled = FINETUNE["lr"] * config.lr / TrainConfig.lr  # like --lr
            result = pretrain_neumf(
                data, config, gmf=gmf, mlp=fits["mlp"].model, finetune={"lr": scaled}
            ).neumf
        else:
            try:
                result = fits[name] = train_model(name, data, config)
            finally:  # the other process waits for the GMF, or for word that there is none
                if name == "gmf" and handoff is not None:
                    handoff.put(fits["gmf"].model if "gmf" in fits else None)
        seconds = time.perf_counter() - clock
        rows.append(
            {
                "model": name,
                "seconds": seconds,
                "s/epoch": seconds / config.epochs,
                "epoch": result.best_epoch,
                "HR@10": result.best["test_hr"],
                "NDCG@10": result.best["test_ndcg"],
            }
        )
        print(
            f"{name:<9} {seconds:7.1f} s  epoch {result.best_epoch:>2}  "
            f"HR@10 {result.best['test_hr']:.3f}  NDCG@10 {result.best['test_ndcg']:.3f}",
            flush=True,
        )
    return rows


def in_two_workers(data, config: TrainConfig) -> list[dict]:
    """The table on both cores: one process of one thread trains GMF then NeuMF, another
    MLP then NeuMF with pre-training (the GMF is handed over; it finishes first, being the
    cheaper model). At batch 256 one thread gives the same parameters as two (checked bit
    for bit), so the rows are those of ``--jobs 1``."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(2, mp_context=context) as pool:
        handoff = manager.Queue()
        parts = [
            pool.submit(train_in_order, names, data, config, handoff, 1)
            for names in (("gmf", "neumf"), ("mlp", "neumf-pre"))
        ]
        rows = [row for part in parts for row in part.result()]
    return sorted(rows, key=lambda row: MODELS.index(row["model"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset",
        default="synthetic",
        help="name or path (default: generated MovieLens-1M-shaped data)",
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        choices=(1, 2),
        help="2 (default with 2 cores or more): two processes of one thread "
        "each, GMF then NeuMF beside MLP then NeuMF with pre-training "
        "(the same numbers as 1, in about half the time)",
    )
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()

    started = time.perf_counter()
    data = build_dataset(load_ratings(args.dataset), seed=args.seed)
    prepare = time.perf_counter() - started
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        progress=False,
    )
    if args.jobs == 1:
        rows = train_in_order(MODELS, data, config)
    else:
        rows = in_two_workers(data, config)
    frame = pd.DataFrame(rows)
    total = time.perf_counter() - started
    text = markdown_table(frame)
    print(text)
    print(f"prepare {prepare:.1f} s; whole table {total:.0f} s ({total / 60:.1f} min)")

    threads = "2 processes of 1 thread" if args.jobs == 2 else f"{torch.get_num_threads()} threads"
    machine = f"{platform.machine()}, {threads}, torch {torch.__version__}"
    name = (
        f"paper-table-{Path(args.dataset).name.replace(':', '-')}"
        f"-b{args.batch_size}-e{args.epochs}" + ("-j2" if args.jobs == 2 else "")
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/paper_table.py " + " ".join(  # --out: where, not what
        f"--{key.replace('_', '-')} {value}"
        for key, value in vars(args).items()
        if key == "jobs" or key != "out" and value != parser.get_default(key)
    )
    (out / f"{name}.md").write_text(
        f"# {name}\n\nCommand: `{command}`\n\nMachine: {machine}\n\n{text}\n\n"
        f"Preparation {prepare:.1f} s; whole table {total:.0f} s ({total / 60:.1f} min), "
        "evaluation of validation and test after every epoch included.\n"
    )
    print(f"wrote {out / name}.md")


if __name__ == "__main__":
    main()
