"""Training: one epoch of the plain PyTorch loop, and ``fit`` with model selection.

**Model selection without peeking at the test set.** The paper's code and the popular ports
keep the epoch with the best *test* HR, which reports the maximum of a noisy curve. Here,
by default, each user's second-latest interaction is a validation item with its own 99
sampled negatives: the epoch with the best validation HR@K is selected (and early stopping
watches it), and the *test* metrics of that epoch are reported. Per-epoch test metrics are
still computed so that the whole curve can be seen. ``select_on="test"`` reproduces the
peeking protocol for comparison.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from ncf_lib import distributed, optimizers
from ncf_lib.checkpoints import Checkpoint, save_checkpoint
from ncf_lib.dataset import NCFData
from ncf_lib.errors import ConfigError, TrainingDivergedError
from ncf_lib.metrics import check_top_k, evaluate
from ncf_lib.models import ModelConfig, Recommender, build_model, config_dict
from ncf_lib.optimizers import OPTIMIZERS
from ncf_lib.sampling import TorchSampler, batches, epoch_arrays


@dataclass
class TrainConfig:
    """Training hyper-parameters; the defaults are those of the paper's code.

    Attributes:
        epochs: passes over the training positives (each with fresh negatives).
        batch_size: rows (positives and negatives) per optimiser step.
        lr: learning rate.
        optimizer: ``adam`` (default), ``sgd`` (the paper fine-tunes pre-trained NeuMF
            with plain SGD) or ``sparse-adam`` (only the embedding rows a batch uses are
            updated: much faster per step on large catalogues, a different optimiser; see
            :mod:`ncf_lib.optimizers`).
        l2: weight of an L2 penalty on the embedding rows of each batch, divided by the
            batch size (default 0; the tuned MF baseline uses it). Added to the gradients;
            the logged loss is the data loss.
        num_ng: sampled negatives per positive, re-drawn every epoch.
        top_k: K of HR@K and NDCG@K.
        seed: seeds negatives, shuffling and dropout.
        select_on: ``validation`` (default) or ``test``: which held-out items choose the
            epoch; ``last`` keeps the final epoch.
        patience: stop after this many epochs without a better selection HR (``None``: never).
        hand_gradients: on the CPU, compute the gradients of GMF, MLP, NeuMF and MF with
            :mod:`ncf_lib.hand_gradients` instead of autograd: the same numbers bit for bit,
            faster per step. Any other class, subclass or model with dropout uses autograd.
        evaluate_start: also evaluate the model before the first epoch (history row
            ``epoch 0``) and let it be selected, as the paper's code does for pre-trained
            models: when fine-tuning does not help on validation, ``best_epoch`` is 0.
        sampler: how negatives are drawn: ``numpy`` (the CPU default), ``torch`` (drawn
            with torch where the model is: the CUDA default, a different random stream) or
            ``auto``.
        log_dir: TensorBoard folder for this run (``None``: no logging).
        checkpoint: where to save the selected model (``None``: keep it in memory only).
        device: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``.
        progress: show a progress bar per epoch.
    """

    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.001
    optimizer: str = "adam"
    l2: float = 0.0
    num_ng: int = 4
    top_k: int = 10
    seed: int = 42
    select_on: str = "validation"
    patience: int | None = None
    hand_gradients: bool = False
    evaluate_start: bool = False
    sampler: str = "auto"
    log_dir: str | None = None
    checkpoint: str | None = None
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        finite = lambda x: isinstance(x, (int, float)) and np.isfinite(x)  # noqa: E731
        checks = {
            "epochs": (self.epochs >= 1, "an integer of at least 1"),
            "batch_size": (self.batch_size >= 1, "an integer of at least 1"),
            "lr": (finite(self.lr) and self.lr > 0, "a finite number above 0"),
            "l2": (finite(self.l2) and self.l2 >= 0, "a finite number of at least 0"),
            "num_ng": (self.num_ng >= 0, "an integer of at least 0"),
            "top_k": (self.top_k >= 1, "an integer of at least 1"),
            "seed": (self.seed >= 0, "an integer of at least 0"),
            "optimizer": (self.optimizer in OPTIMIZERS, "adam, sgd or sparse-adam"),
            "select_on": (
                self.select_on in ("validation", "test", "last"),
                "validation, test or last",
            ),
            "patience": (self.patience is None or self.patience >= 1, "None or at least 1"),
            "sampler": (self.sampler in ("auto", "numpy", "torch"), "auto, numpy or torch"),
            "device": (self.device in ("auto", "cpu", "cuda"), "auto, cpu or cuda"),
        }
        for name, (ok, expected) in checks.items():
            if not ok:
                raise ConfigError(
                    f"{name} (--{name.replace('_', '-')}) must be {expected}, "
                    f"got {getattr(self, name)!r}"
                )


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: one row per epoch: ``epoch, loss, val_hr, val_ndcg, test_hr, test_ndcg,
            train_seconds, eval_seconds``.
        best_epoch: the selected epoch (1-based; 0 is the model before training, with
            ``evaluate_start``).
        best: metrics of that epoch (``test_hr``, ``test_ndcg``, and validation ones).
        model: the model with the selected epoch's weights.
        checkpoint: path of the saved checkpoint, if any.
        seconds: wall time of the whole fit.
    """

    history: pd.DataFrame
    best_epoch: int
    best: dict[str, float]
    model: Recommender
    checkpoint: Path | None = None
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda, but no CUDA device is available")
    return torch.device(name)


def make_optimizer(model: nn.Module, config: TrainConfig):
    """The optimiser ``config.optimizer`` names, at ``config.lr`` (see
    :func:`ncf_lib.optimizers.make_optimizer`)."""
    return optimizers.make_optimizer(model, config.optimizer, config.lr)


def add_l2_grad_(model: nn.Module, users: torch.Tensor, items: torch.Tensor, weight: float) -> None:
    """Add the gradient of ``weight *`` (sum of squares of the embedding rows a batch uses,
    once per occurrence) to the tables' ``.grad``: ``2 * weight * row`` per occurrence.

    The same update as adding that penalty to the loss, without a second pass through every
    table; call it after ``backward``. Tables are told apart by name (``user`` or ``item``).
    """
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.Embedding):
                ids = users if "user" in name else items
                table = module.weight
                if table.grad.is_sparse:  # sparse-adam: more (index, row) pairs
                    penalty = torch.sparse_coo_tensor(
                        ids[None], 2 * weight * table[ids], table.shape, check_invariants=False
                    )
                    table.grad = table.grad + penalty
                else:
                    table.grad.index_add_(0, ids, table[ids], alpha=2 * weight)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    *,
    l2: float = 0.0,
) -> float:
    """One pass over an epoch's ``(users, items, labels)`` batches; returns the mean loss."""
    model.train()
    loss_fn = nn.BCEWithLogitsLoss()
    total, rows = 0.0, 0
    for users, items, labels in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(users, items), labels)
        loss.backward()
        if l2:
            add_l2_grad_(model, users, items, l2 / labels.shape[0])
        optimizer.step()
        total += loss.detach() * labels.shape[0]  # a tensor: no wait for the device
        rows += labels.shape[0]
    return float(total) / rows


def fit(
    model: Recommender,
    data: NCFData,
    config: TrainConfig = TrainConfig(),
    *,
    on_epoch: Callable[[dict], None] | None = None,
    resume: Checkpoint | None = None,
) -> FitResult:
    """Train ``model`` on ``data``, select the best epoch, return the history.

    Each epoch draws fresh negatives, runs :func:`train_epoch` over shuffled batches, then
    evaluates HR@K / NDCG@K on the validation and test items. The selected epoch's weights
    are kept and restored at the end. With ``config.checkpoint``, the checkpoint is written
    (atomically) after every epoch: the best weights so far, and what is needed to resume.

    Args:
        model: a fresh or pre-trained model.
        data: from :func:`ncf_lib.dataset.build_dataset`.
        config: hyper-parameters.
        on_epoch: called with each history row (the command line prints it).
        resume: a checkpoint written by an interrupted ``fit`` of the same model, data and
            config: training continues after its last epoch, with its weights, optimizer
            and random states, and gives the numbers an uninterrupted run gives.
    """
    from ncf_lib import hand_gradients  # it builds on this module

    if config.select_on == "validation" and data.validation is None:
        raise ConfigError("select_on='validation' needs data built with validation=True")
    check_top_k(config.top_k, data.test.candidates.shape[1], "candidates per user")
    device = resolve_device(config.device)
    ranks = distributed.from_environment()  # set by torchrun
    if ranks is not None:
        distributed.check_supported(config)
        device = distributed.start(ranks, device)
    model.to(device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    on_device = config.sampler == "torch" or (config.sampler == "auto" and device.type == "cuda")
    sampler = TorchSampler(data, config.num_ng, config.seed, device) if on_device else None
    optimizer = make_optimizer(model, config)
    by_hand = config.hand_gradients and ranks is None and hand_gradients.supports(model)
    run_epoch = hand_gradients.train_epoch if by_hand else train_epoch
    trained = model  # what the loop calls: the model, or DDP around it (same parameters)
    if ranks is not None:
        ids = [device.index] if device.type == "cuda" else None
        trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    main = ranks is None or ranks.main  # prints, logs and writes the checkpoint
    state = _State(first=0 if config.evaluate_start else 1)
    if resume is not None:
        state = _restore(resume, model, optimizer, rng, sampler)
    writer = _writer(config.log_dir if main else None)
    started = time.perf_counter()
    for epoch in range(state.first, config.epochs + 1 if not state.stopped else 0):
        clock = time.perf_counter()
        loss = float("nan")
        if epoch > 0:  # epoch 0: the model as given, evaluated only
            tensors = sampler.epoch() if sampler else epoch_arrays(data, config.num_ng, rng)
            parts = _progress(tensors, config, epoch, ranks)
            loss = run_epoch(trained, optimizer, parts, l2=config.l2)
            if ranks is not None:
                loss = distributed.mean_over_ranks(loss, device)
            if not np.isfinite(loss):
                raise TrainingDivergedError(_diverged(epoch, loss, config))
        row = {"epoch": epoch, "loss": loss, "train_seconds": time.perf_counter() - clock}
        clock = time.perf_counter()
        model.eval()
        for split, eval_set in (("val", data.validation), ("test", data.test)):
            if eval_set is not None:
                if ranks is None:
                    metrics = evaluate(model.score, eval_set, config.top_k, device=device)
                else:
                    metrics = distributed.evaluate(model.score, eval_set, config.top_k, device)
                row[f"{split}_hr"], row[f"{split}_ndcg"] = metrics["hr"], metrics["ndcg"]
        row["eval_seconds"] = time.perf_counter() - clock
        state.rows.append(row)
        _log_epoch(writer, row)
        selection = {"validation": row.get("val_hr"), "test": row["test_hr"], "last": epoch}
        if selection[config.select_on] > state.best_hr:
            state.best_epoch, state.best_hr, state.stale = epoch, selection[config.select_on], 0
            state.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            state.stale += 1
            state.stopped = config.patience is not None and state.stale >= config.patience
        if config.checkpoint is not None and main:
            _save(config, model, optimizer, rng, sampler, data, state, epoch)
        if on_epoch is not None:
            on_epoch(row)
        if state.stopped:
            break
    model.load_state_dict(state.best_state)
    best = state.best_metrics()
    if writer is not None:
        _log_hparams(writer, config, model, best, state.best_epoch)
    return FitResult(
        pd.DataFrame(state.rows),
        state.best_epoch,
        best,
        model,
        None if config.checkpoint is None else Path(config.checkpoint),
        time.perf_counter() - started,
    )


@dataclass
class _State:
    """Where a :func:`fit` stands: what a checkpoint keeps to resume it."""

    first: int
    rows: list = field(default_factory=list)
    best_epoch: int = 0
    best_hr: float = -1.0
    best_state: dict | None = None
    stale: int = 0
    stopped: bool = False

    def best_metrics(self) -> dict[str, float]:
        """The selected epoch's metrics (``test_hr``, ``val_ndcg``, ...)."""
        row = next(row for row in self.rows if row["epoch"] == self.best_epoch)
        return {k: v for k, v in row.items() if k.endswith(("_hr", "_ndcg"))}


def _save(config, model, optimizer, rng, sampler, data, state: _State, epoch: int) -> None:
    """Checkpoint the best weights so far, with the state to resume after ``epoch``."""
    training = {
        "epoch": epoch,
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "numpy_rng": json.dumps(rng.bit_generator.state),
        "torch_rng": torch.get_rng_state(),
        "sampler_rng": None if sampler is None else sampler.generator.get_state().cpu(),
        "history": [dict(row) for row in state.rows],
        "best_epoch": state.best_epoch,
        "best_hr": state.best_hr,
        "stale": state.stale,
        "stopped": state.stopped,
    }
    best = state.best_metrics()
    current = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state.best_state)  # the checkpoint's model is the best one
    try:
        save_checkpoint(
            config.checkpoint,
            model,
            data,
            asdict(config),
            epoch=state.best_epoch,
            metrics=best,
            training=training,
        )
    finally:
        model.load_state_dict(current)


def _restore(resume: Checkpoint, model, optimizer, rng, sampler) -> _State:
    """Put ``model``, ``optimizer`` and the generators back where ``resume`` left them."""
    saved = resume.training
    if saved is None:
        raise ConfigError("this checkpoint holds no training state to resume from")
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    rng.bit_generator.state = json.loads(saved["numpy_rng"])
    torch.set_rng_state(saved["torch_rng"])
    if sampler is not None:
        if saved["sampler_rng"] is None:
            raise ConfigError(
                "this run drew its negatives with numpy; resume it with sampler=numpy"
            )
        sampler.generator.set_state(saved["sampler_rng"].to(sampler.generator.device))
    return _State(
        first=saved["epoch"] + 1,
        rows=[dict(row) for row in saved["history"]],
        best_epoch=saved["best_epoch"],
        best_hr=saved["best_hr"],
        best_state={k: v.detach().clone() for k, v in resume.model.state_dict().items()},
        stale=saved["stale"],
        stopped=saved["stopped"],
    )


def train_model(
    name: str,
    data: NCFData,
    config: TrainConfig,
    model_config: ModelConfig = ModelConfig(),
    **kwargs,
) -> FitResult:
    """Seed, build a fresh model by name and :func:`fit` it."""
    seed_everything(config.seed)
    model = build_model(name, data.n_users, data.n_items, model_config)
    return fit(model, data, config, **kwargs)


def _progress(tensors, config: TrainConfig, epoch: int, ranks: distributed.Ranks | None = None):
    """The epoch's batches (this rank's shares of them, with ``ranks``), behind a progress
    bar when ``config.progress`` (on rank 0 only)."""
    total = -(-tensors[0].shape[0] // config.batch_size)
    if ranks is None:
        parts = batches(*tensors, batch_size=config.batch_size)
    else:
        parts = distributed.shard(tensors, config.batch_size, ranks)
    return tqdm(
        parts,
        total=total,
        desc=f"epoch {epoch}/{config.epochs}",
        leave=False,
        disable=not config.progress or (ranks is not None and not ranks.main),
        mininterval=0.5,
    )


def _diverged(epoch: int, loss: float, config: TrainConfig) -> str:
    causes = f"the learning rate (lr={config.lr}, {config.optimizer})"
    if config.l2:
        causes += f" or the L2 weight (l2={config.l2})"
    return f"training diverged in epoch {epoch}: the loss is {loss}; lower {causes}"


def _writer(log_dir: str | None):
    if log_dir is None:
        return None
    from tensorboardX import SummaryWriter

    return SummaryWriter(log_dir)


def _log_epoch(writer, row: dict) -> None:
    if writer is None:
        return
    for key in ("loss", "val_hr", "val_ndcg", "test_hr", "test_ndcg"):
        if key in row and np.isfinite(row[key]):
            writer.add_scalar(f"epoch/{key}", row[key], row["epoch"])


def _log_hparams(writer, config: TrainConfig, model: Recommender, best: dict, epoch: int):
    hparams = {k: v for k, v in asdict(config).items() if isinstance(v, (int, float, str))}
    hparams.update({k: str(v) for k, v in config_dict(model.config).items()})
    hparams["model"] = type(model).__name__
    writer.add_hparams(
        hparams, {f"best/{k}": v for k, v in best.items()}, name="hparams", global_step=epoch
    )
    writer.close()
