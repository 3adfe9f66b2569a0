"""Users the model never saw: fold-in against training them normally, on real data.

    python benchmarks/fold_in.py --dataset ../shared/data/ml-100k

Holds out a random 10% of the users from training (seed 0), folds each of them in from
their training interactions (:func:`ncf_lib.use.foldin.held_out_users_study`), and compares
their test HR@10 / NDCG@10 (99 sampled negatives, and full ranking) with the same users'
numbers from a model trained on everyone with the same settings (10 epochs, the epoch
chosen on validation). Writes ``results/fold-in-DATASET.md``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from ncf_lib.dataset import build_dataset
from ncf_lib.ratings import load_ratings
from ncf_lib.study.report import dataset_label
from ncf_lib.train import TrainConfig
from ncf_lib.use.foldin import FoldInConfig, held_out_users_study

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import markdown_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", nargs="+", default=["gmf", "neumf", "mf"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    data = build_dataset(load_ratings(args.dataset), seed=42)
    config = TrainConfig(epochs=args.epochs, progress=False)
    tables = []
    for name in args.models:
        clock = time.perf_counter()
        table = held_out_users_study(data, name, config, fold=FoldInConfig())
        seconds = time.perf_counter() - clock
        users = table.index.name.split(", ")[1]
        tables.append(table.reset_index(names="users").assign(model=name, seconds=seconds))
        print(table.round(3), f"({seconds:.0f} s)", flush=True)
    frame = pd.concat(tables)[["model", "users", "HR@10", "NDCG@10", "full HR@10",
                               "full NDCG@10", "seconds"]]  # fmt: skip
    label = dataset_label(args.dataset)
    machine = f"{platform.machine()}, torch {torch.__version__}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"fold-in-{label.replace(':', '_')}.md"
    path.write_text(
        f"# Fold-in of unseen users on {label}\n\n"
        f"Command: `python benchmarks/fold_in.py --dataset {label}`\n\nMachine: {machine}\n\n"
        f"{users}, 10% of the test users, never trained on; `seconds`: both trainings and "
        "the fold-in.\n\n" + markdown_table(frame.round(3)) + "\n"
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
