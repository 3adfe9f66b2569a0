"""Training in several processes with ``torchrun`` and PyTorch's DistributedDataParallel.

``torchrun --nproc-per-node N -m ncf_lib train ...`` (``--nnodes`` and a rendezvous address
for several machines) starts N processes with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``
set; :func:`ncf_lib.scale.fit_options` then joins the process group (:func:`fit_options`)
and gives :func:`ncf_lib.train.fit` this rank's ``train_epoch`` (:class:`TrainEpoch`: the
model wrapped in ``DistributedDataParallel``) and ``evaluate`` (:func:`evaluate`), which
change nothing else in the loop:

* every rank builds the same epoch (same seed, same negatives, same shuffle) and takes its
  contiguous share of each global batch (:func:`shard`): ``batch_size`` stays the global
  batch, so one process and N processes make the same steps, and DDP averages the N equal
  shares' gradients into the global batch's mean gradient;
* every rank makes the same number of steps: the last, shorter batch of an epoch is cut to
  a multiple of N rows (at most N - 1 of the epoch's rows are left out), so no rank waits
  for a step that another does not make;
* evaluation is split over the ranks and their ranks gathered (:func:`evaluate`);
* only rank 0 prints, logs and writes the checkpoint: the other ranks' config has none.

Backends: ``nccl`` on CUDA, ``gloo`` on CPU. Collectives time out after
:data:`TIMEOUT_MINUTES`, and ``torchrun`` stops every rank when one fails, so a failing rank
stops the run with its error instead of leaving the others waiting.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import torch
import torch.distributed as dist

from ncf_lib import train
from ncf_lib.dataset import EvalSet
from ncf_lib.errors import ConfigError
from ncf_lib.metrics import Scorer, check_top_k, hit_rate, ndcg, sampled_ranks
from ncf_lib.train import TrainConfig

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


def check_supported(config: TrainConfig, ranks: Ranks) -> None:
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
    if config.batch_size % ranks.world:
        raise ConfigError(
            f"batch_size (--batch-size) is the global batch; {config.batch_size} does not "
            f"divide into {ranks.world} equal shares"
        )


def shard(
    batches: Iterable[tuple[torch.Tensor, ...]], ranks: Ranks
) -> Iterator[tuple[torch.Tensor, ...]]:
    """This rank's share of each global batch: rows ``[r * b, (r + 1) * b)`` with ``b`` the
    batch's rows divided by the number of ranks (rounded down: the last, shorter batch is
    cut to a multiple of the number of ranks)."""
    for batch in batches:
        rows = batch[0].shape[0] // ranks.world
        if rows == 0:
            return
        begin = ranks.rank * rows
        yield tuple(t[begin : begin + rows] for t in batch)


def mean_over_ranks(value: float, device: torch.device) -> float:
    """The mean over ranks of a per-rank number (every rank trains on as many rows)."""
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return float(total[0]) / dist.get_world_size()


def evaluate(
    scorer: Scorer, eval_set: EvalSet, k: int = 10, *, device: torch.device | str = "cpu"
) -> dict[str, float]:
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


class TrainEpoch:
    """:func:`ncf_lib.train.fit`'s ``train_epoch`` for one rank: ``inner`` (by default
    :func:`ncf_lib.train.train_epoch`) on the model wrapped in ``DistributedDataParallel``
    (once per model), over this rank's :func:`shard` of each global batch; returns the mean
    loss over the ranks."""

    def __init__(self, ranks: Ranks, inner: Callable[..., float] = train.train_epoch) -> None:
        self.ranks, self.inner = ranks, inner
        self.model: torch.nn.Module | None = None
        self.wrapped: torch.nn.Module | None = None

    def __call__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        batches: Iterable[tuple[torch.Tensor, ...]],
        *,
        l2: float = 0.0,
    ) -> float:
        device = next(model.parameters()).device
        if self.model is not model:  # DDP syncs rank 0's weights to every rank here
            ids = [self.ranks.local_rank] if device.type == "cuda" else None
            self.model = model
            self.wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        loss = self.inner(self.wrapped, optimizer, shard(batches, self.ranks), l2=l2)
        return mean_over_ranks(loss, device)


def fit_options(
    ranks: Ranks, config: TrainConfig, inner: Callable[..., float] = train.train_epoch
) -> tuple[TrainConfig, dict]:
    """Join the process group and return this rank's ``(config, keyword arguments)`` of
    :func:`ncf_lib.train.fit`: ranks other than 0 write no checkpoint, no logs and show no
    progress bar."""
    check_supported(config, ranks)
    start(ranks, train.resolve_device(config.device))
    if not ranks.main:
        config = replace(config, checkpoint=None, log_dir=None, progress=False)
    return config, {"train_epoch": TrainEpoch(ranks, inner), "evaluate": evaluate}
