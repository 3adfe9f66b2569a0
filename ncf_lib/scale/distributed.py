"""Training in several processes with ``torchrun`` and PyTorch's DistributedDataParallel.

``torchrun --nproc-per-node N -m ncf_lib train ...`` (``--nnodes`` and a rendezvous address
for several machines) starts N processes with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``
set; :func:`ncf_lib.scale.engine` then gives :func:`ncf_lib.train.fit` :class:`Torchrun` as its
processes, which trains the model wrapped in ``DistributedDataParallel`` and changes nothing
else in the loop:

* every rank builds the same epoch (same seed, same negatives, same shuffle) and takes its
  contiguous share of each global batch (:func:`shard`): ``batch_size`` stays the global
  batch, so one process and N processes make the same steps, and DDP averages the N equal
  shares' gradients into the global batch's mean gradient;
* every rank makes the same number of steps: the last, shorter batch of an epoch is cut to
  a multiple of N rows (at most N - 1 of the epoch's rows are left out), so no rank waits
  for a step that another does not make;
* evaluation is split over the ranks and their ranks gathered (:func:`evaluate`);
* only rank 0 prints, logs and writes the checkpoint.

Backends: ``nccl`` on CUDA, ``gloo`` on CPU. Collectives time out after
:data:`TIMEOUT_MINUTES`, and ``torchrun`` stops every rank when one fails, so a failing rank
stops the run with its error instead of leaving the others waiting.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ncf_lib.dataset import EvalSet
from ncf_lib.errors import ConfigError
from ncf_lib.metrics import Scorer, check_top_k, hit_rate, ndcg, sampled_ranks
from ncf_lib.train import Processes, TrainConfig

#: How long a rank waits in a collective for the others before failing.
TIMEOUT_MINUTES = 10


@dataclass(frozen=True)
class Ranks:
    """This process's place in a distributed run."""

    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        """Rank 0: the one that prints, logs and writes files."""
        return self.rank == 0


def from_environment() -> Ranks | None:
    """The run ``torchrun`` started this process in (``WORLD_SIZE`` is set, even for one
    process: that runs the DDP path on one device), or ``None`` in a plain process."""
    if "WORLD_SIZE" not in os.environ:
        return None
    world = int(os.environ["WORLD_SIZE"])
    return Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def start(ranks: Ranks, device: torch.device) -> torch.device:
    """Join the process group (``nccl`` for CUDA, ``gloo`` otherwise) once; returns the
    device this rank trains on (``cuda:LOCAL_RANK`` for CUDA)."""
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=TIMEOUT_MINUTES),
        )
    return device


def check_supported(config: TrainConfig) -> None:
    """Settings the multi-process path does not handle yet."""
    if config.l2:
        raise ConfigError(
            "l2 (--l2) is applied to each rank's rows after DDP averages the gradients, so "
            "ranks would drift apart; train with --l2 in one process"
        )
    if config.optimizer == "sparse-adam":
        raise ConfigError(
            "optimizer (--optimizer) sparse-adam: sparse gradients are not averaged by DDP "
            "here; use adam or sgd with torchrun"
        )


def shard(
    tensors: tuple[torch.Tensor, ...], batch_size: int, ranks: Ranks
) -> Iterator[tuple[torch.Tensor, ...]]:
    """This rank's share of each global batch of ``batch_size`` rows of the epoch's
    ``(n,)`` tensors: rows ``[start + r * b, start + (r + 1) * b)`` with ``b`` the global
    batch divided by the number of ranks. The last batch is cut to a multiple of the
    number of ranks; a global batch that does not divide evenly is refused."""
    if batch_size % ranks.world:
        raise ConfigError(
            f"batch_size (--batch-size) is the global batch; {batch_size} does not divide "
            f"into {ranks.world} equal shares"
        )
    n = tensors[0].shape[0]
    for start in range(0, n, batch_size):
        rows = min(batch_size, n - start) // ranks.world  # this batch's share of each rank
        if rows == 0:
            return
        begin = start + ranks.rank * rows
        yield tuple(t[begin : begin + rows] for t in tensors)


def mean_over_ranks(value: float, device: torch.device) -> float:
    """The mean over ranks of a per-rank number (every rank trains on as many rows)."""
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return float(total[0]) / dist.get_world_size()


def evaluate(scorer: Scorer, eval_set: EvalSet, k: int, device: torch.device) -> dict[str, float]:
    """:func:`ncf_lib.metrics.evaluate` with the users split over the ranks: each ranks the
    held-out items of a contiguous share, and the shares are summed into every rank's
    ``(users,)`` ranks, so every rank gets the one-process numbers."""
    check_top_k(k, eval_set.candidates.shape[1], "candidates per user")
    world, rank, n = dist.get_world_size(), dist.get_rank(), eval_set.users.size
    lo, hi = n * rank // world, n * (rank + 1) // world
    ranks = torch.zeros(n, dtype=torch.int64)
    if hi > lo:
        part = EvalSet(eval_set.users[lo:hi], eval_set.candidates[lo:hi])
        ranks[lo:hi] = sampled_ranks(scorer, part, device=device)
    ranks = ranks.to(device)  # nccl reduces CUDA tensors only
    dist.all_reduce(ranks)
    return {"hr": hit_rate(ranks, k), "ndcg": ndcg(ranks, k)}


class Torchrun(Processes):
    """:class:`ncf_lib.train.Processes` for one rank of a ``torchrun`` run."""

    def __init__(self, ranks: Ranks) -> None:
        self.ranks = ranks
        self.main = ranks.main

    def check(self, config: TrainConfig) -> None:
        check_supported(config)

    def device(self, device: torch.device) -> torch.device:
        return start(self.ranks, device)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        ids = [self.ranks.local_rank] if next(model.parameters()).is_cuda else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def batches(self, tensors: tuple[torch.Tensor, ...], batch_size: int) -> Iterator[tuple]:
        return shard(tensors, batch_size, self.ranks)

    def mean(self, loss: float, device: torch.device) -> float:
        return mean_over_ranks(loss, device)

    def evaluate(self, scorer: Scorer, eval_set: EvalSet, k: int, device) -> dict[str, float]:
        return evaluate(scorer, eval_set, k, device)
