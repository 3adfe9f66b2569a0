"""Run by ``torchrun`` in tests/test_distributed.py: fit a tiny model, rank 0 saves the result.

    torchrun --nproc-per-node N tests/ddp_fit.py OUT.pt MODEL BATCH [FAIL_RANK]

With FAIL_RANK, that rank raises after its first epoch (a failing rank, for the test that the
others do not hang).
"""

from __future__ import annotations

import sys

import torch

from ncf_lib import scale
from ncf_lib.dataset import build_dataset
from ncf_lib.ratings import load_ratings
from ncf_lib.scale.distributed import from_environment
from ncf_lib.train import TrainConfig, train_model

SHAPE = "synthetic:90x300x1800"


def config(batch_size: int) -> TrainConfig:
    return TrainConfig(epochs=3, batch_size=batch_size, progress=False, select_on="last", seed=3)


def main() -> None:
    out, model, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fail = int(sys.argv[4]) if len(sys.argv) > 4 else None
    torch.set_num_threads(1)
    ranks = from_environment()

    def on_epoch(row: dict) -> None:
        if fail is not None and ranks is not None and ranks.rank == fail:
            raise RuntimeError(f"rank {fail} fails on purpose after epoch {row['epoch']}")

    data = build_dataset(load_ratings(SHAPE), seed=42)
    settings, options = scale.fit_options(config(batch))
    result = train_model(model, data, settings, on_epoch=on_epoch, **options)
    if ranks is None or ranks.main:
        torch.save({"state": result.model.state_dict(), "history": result.history}, out)


if __name__ == "__main__":
    main()
