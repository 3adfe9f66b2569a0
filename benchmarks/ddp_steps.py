"""Training steps in one process against ``torchrun`` processes, on the same data and global batch.

    python benchmarks/ddp_steps.py --dataset /tmp/ml20m/ratings.csv
    torchrun --nproc-per-node 2 benchmarks/ddp_steps.py --dataset /tmp/ml20m/ratings.csv

Builds the dataset and one epoch as ``fit`` does, then times ``--steps`` global steps of
NeuMF at ``--batch-size``: in one process with the plain loop (autograd) and the
hand-written gradients; under ``torchrun`` with the model in DistributedDataParallel, each
rank taking its share of every global batch (:func:`ncf_lib.scale.distributed.shard`). Prints the
milliseconds per global step, the epoch it extrapolates to, and the bytes each step's
gradient all-reduce carries (every parameter's gradient, float32).
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from ncf_lib.dataset import build_dataset
from ncf_lib.models import ModelConfig, build_model
from ncf_lib.ratings import load_ratings
from ncf_lib.sampling import batches, epoch_arrays
from ncf_lib.scale import distributed, hand_gradients
from ncf_lib.train import TrainConfig, make_optimizer, train_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ranks = distributed.from_environment()
    device = torch.device("cpu")
    if ranks is not None:
        distributed.start(ranks, device)
    say = print if ranks is None or ranks.main else (lambda *a, **k: None)
    clock = time.perf_counter()
    data = build_dataset(load_ratings(args.dataset), seed=42)
    epoch = epoch_arrays(data, 4, np.random.default_rng(0))
    say(f"data {data.n_users:,} x {data.n_items:,}, {epoch[0].numel():,} rows per epoch, "
        f"prepared in {time.perf_counter() - clock:.0f} s", flush=True)  # fmt: skip
    epoch_steps = -(-epoch[0].numel() // args.batch_size)
    runs = ["autograd", "hand"] if ranks is None else ["ddp"]
    for run in runs:
        torch.manual_seed(0)
        model = build_model("neumf", data.n_users, data.n_items, ModelConfig(factor_num=32))
        optimizer = make_optimizer(model, TrainConfig())
        params = sum(p.numel() for p in model.parameters())
        if run == "ddp":
            trained = torch.nn.parallel.DistributedDataParallel(model)
            steps = distributed.shard(epoch, args.batch_size, ranks)
        else:
            trained, steps = model, batches(*epoch, batch_size=args.batch_size)
        step = hand_gradients.train_epoch if run == "hand" else train_epoch
        step(trained, optimizer, itertools.islice(steps, 10))  # warm-up
        if ranks is not None:
            torch.distributed.barrier()
        clock = time.perf_counter()
        step(trained, optimizer, itertools.islice(steps, args.steps))
        if ranks is not None:
            torch.distributed.barrier()
        ms = (time.perf_counter() - clock) / args.steps * 1e3
        world = 1 if ranks is None else ranks.world
        say(
            f"{run}, {world} process(es): {ms:.2f} ms per global step of {args.batch_size}, "
            f"{ms * epoch_steps / 6e4:.1f} min per epoch; all-reduce of {params:,} float32 "
            f"gradients = {params * 4 / 2**20:.1f} MiB per step",
            flush=True,
        )


if __name__ == "__main__":
    main()
