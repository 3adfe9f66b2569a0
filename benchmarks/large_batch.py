"""What the opt-in large batch costs in quality: HR@10 / NDCG@10 against the original batch size.

    python benchmarks/large_batch.py --dataset ../shared/data/ml-100k
    python benchmarks/large_batch.py --dataset synthetic --epochs 5 --seeds 0
    python benchmarks/large_batch.py --models neumf --settings 256:0.001 256:0.001:plain

A setting ``BATCH:LR:plain`` trains with the plain ``torch.optim.Adam`` (no fused or foreach
kernel), the reference that shows the default fast path gives the same numbers;
``BATCH:LR:sparse`` with ``--optimizer sparse-adam`` (only the embedding rows a batch uses
are updated, :mod:`ncf_lib.scale.optimizers`).

Trains each model with the original tutorial's settings (32 factors, tower [64, 32, 16, 8],
4 negatives) for a fixed number of epochs, once per seed and per ``BATCH:LR`` setting, and
reports the test metrics at the epoch chosen on validation, their mean and standard
deviation over seeds, and the training seconds per epoch. Same seeds for every setting, so
the comparison is paired."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

from ncf_lib import scale
from ncf_lib.dataset import build_dataset
from ncf_lib.ratings import load_ratings
from ncf_lib.train import TrainConfig, train_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import markdown_table  # noqa: E402


def _plain_adam(model, config: TrainConfig):
    """The textbook optimizer: ``torch.optim.Adam`` with its per-tensor loop."""
    return torch.optim.Adam(model.parameters(), lr=config.lr, foreach=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--models", nargs="+", default=["gmf", "mlp", "neumf"])
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["256:0.001", "2048:0.004"],
        help="BATCH:LR pairs (default: the original tutorial's, and the opt-in large batch)",
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()

    data = build_dataset(load_ratings(args.dataset), seed=42)
    rows = []
    for model in args.models:
        for setting in args.settings:
            batch, lr, *kind = setting.split(":")
            adam = kind[0] if kind else "fused"
            if adam not in ("fused", "plain", "sparse"):
                parser.error(f"--settings {setting}: expected BATCH:LR[:plain|:sparse]")
            for seed in args.seeds:
                config = TrainConfig(
                    epochs=args.epochs,
                    batch_size=int(batch),
                    lr=float(lr),
                    seed=seed,
                    progress=False,
                    optimizer="sparse-adam" if adam == "sparse" else "adam",
                )
                options = scale.fit_options(config)[1]
                if adam == "plain":
                    options = {"make_optimizer": _plain_adam}
                result = train_model(model, data, config, **options)
                rows.append(
                    {
                        "model": model,
                        "batch": int(batch),
                        "lr": float(lr),
                        "adam": adam,
                        "seed": seed,
                        "epoch": result.best_epoch,
                        "hr": result.best["test_hr"],
                        "ndcg": result.best["test_ndcg"],
                        "s/epoch": result.history["train_seconds"].mean(),
                    }
                )
                print(rows[-1], flush=True)
    runs = pd.DataFrame(rows)
    table = (
        runs.groupby(["model", "batch", "lr", "adam"], sort=False)
        .agg(
            **{
                "HR@10": ("hr", "mean"),
                "HR std": ("hr", "std"),
                "NDCG@10": ("ndcg", "mean"),
                "NDCG std": ("ndcg", "std"),
                "train s/epoch": ("s/epoch", "mean"),
                "runs": ("seed", "size"),
            }
        )
        .reset_index()
    )
    text = markdown_table(table)
    print(text)
    name = f"large-batch-{Path(args.dataset).name.replace(':', '-')}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/large_batch.py " + " ".join(sys.argv[1:])
    (out / f"{name}.md").write_text(
        f"# {name}\n\nCommand: `{command}`\n\n{text}\n\nTest metrics at the epoch chosen on "
        f"validation ({args.epochs} epochs), mean and std over seeds {args.seeds}.\n"
    )
    print(f"wrote {out / name}.md")


if __name__ == "__main__":
    main()
