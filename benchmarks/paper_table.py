"""Time the paper's table: GMF, MLP, NeuMF and NeuMF with pre-training, on one machine.

    python benchmarks/paper_table.py                               # seed settings, batch 256
    python benchmarks/paper_table.py --batch-size 2048 --lr 0.004  # the opt-in large batch
    python benchmarks/paper_table.py --dataset ../shared/data/ml-100k --epochs 20

Generated MovieLens-1M-shaped data by default. The seed's model settings (32 factors, MLP
tower [64, 32, 16, 8], 4 negatives, 99 test negatives); each model trains ``--epochs``
epochs with validation and test evaluated after every epoch, the epoch chosen on validation;
NeuMF with pre-training reuses the GMF and MLP just trained and fine-tunes with the paper's
SGD (:data:`ncf_lib.train.FINETUNE`, learning rate scaled like ``--lr``). Prints one row per
model (seconds, seconds per epoch, test HR@10 / NDCG@10 at the selected epoch) and the
total, and writes them with the command to ``--out``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from ncf_lib.data import build_dataset, load_ratings
from ncf_lib.train import FINETUNE, TrainConfig, fit, pretrained_neumf, train_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import markdown_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic",
                        help="name or path (default: generated MovieLens-1M-shaped data)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()

    started = time.perf_counter()
    data = build_dataset(load_ratings(args.dataset), seed=args.seed)
    prepare = time.perf_counter() - started
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         seed=args.seed, progress=False)
    rows, fits = [], {}
    for name in ("gmf", "mlp", "neumf", "neumf-pre"):
        clock = time.perf_counter()
        if name == "neumf-pre":
            torch.manual_seed(args.seed)
            tune = TrainConfig(**{**config.__dict__, **FINETUNE,
                                  "lr": FINETUNE["lr"] * args.lr / TrainConfig.lr})
            result = fit(pretrained_neumf(fits["gmf"].model, fits["mlp"].model), data, tune)
        else:
            result = fits[name] = train_model(name, data, config)
        seconds = time.perf_counter() - clock
        rows.append({"model": name, "seconds": seconds, "s/epoch": seconds / args.epochs,
                     "epoch": result.best_epoch, "HR@10": result.best["test_hr"],
                     "NDCG@10": result.best["test_ndcg"]})
        print(f"{name:<9} {seconds:7.1f} s  epoch {result.best_epoch:>2}  "
              f"HR@10 {result.best['test_hr']:.3f}  NDCG@10 {result.best['test_ndcg']:.3f}",
              flush=True)
    frame = pd.DataFrame(rows)
    total = time.perf_counter() - started
    text = markdown_table(frame)
    print(text)
    print(f"prepare {prepare:.1f} s; whole table {total:.0f} s ({total / 60:.1f} min)")

    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    name = (f"paper-table-{Path(args.dataset).name.replace(':', '-')}"
            f"-b{args.batch_size}-e{args.epochs}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/paper_table.py " + " ".join(sys.argv[1:])
    (out / f"{name}.md").write_text(
        f"# {name}\n\nCommand: `{command}`\n\nMachine: {machine}\n\n{text}\n\n"
        f"Preparation {prepare:.1f} s; whole table {total:.0f} s ({total / 60:.1f} min), "
        "evaluation of validation and test after every epoch included.\n")
    print(f"wrote {out / name}.md")


if __name__ == "__main__":
    main()
