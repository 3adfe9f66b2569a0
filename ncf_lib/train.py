"""Training: one epoch of the plain PyTorch loop, and ``fit`` with model selection.

The paper's code and the popular ports keep the epoch with the best *test* HR: the maximum
of a noisy curve. By default ``fit`` selects the epoch (and stops early) on the validation
items, each user's second-latest interaction, and reports that epoch's *test* metrics;
``select_on="test"`` reproduces the peeking protocol for comparison.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from ncf_lib.checkpoints import Checkpoint, TrainingState, restore_training, save_training
from ncf_lib.dataset import MAX_SEED, NCFData
from ncf_lib.errors import ConfigError, TrainingDivergedError
from ncf_lib.event_log import EventLog
from ncf_lib.memory import epoch_bytes, require
from ncf_lib.metrics import check_top_k, evaluate
from ncf_lib.models import ModelConfig, Recommender, build_model, config_dict
from ncf_lib.sampling import NegativeSampler, batches

#: The optimisers :func:`make_optimizer` builds.
OPTIMIZERS = ("adam", "sgd")
#: The history column that ``TrainConfig.select_on`` maximises (``last``: the latest epoch).
SELECTION = {"validation": "val_hr", "test": "test_hr", "last": None}
#: The most epochs a run may ask for (a year of 5-minute epochs).
MAX_EPOCHS = 100_000
#: The history columns the TensorBoard log holds (``epoch/loss``, ...), every epoch.
LOGGED = ("loss", "val_hr", "val_ndcg", "test_hr", "test_ndcg")
#: ``TrainConfig.device``: ``auto`` is CUDA when available, else the CPU.
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters; the defaults are those of the paper's code.

    Attributes:
        epochs: passes over the training positives (each with fresh negatives).
        batch_size: rows (positives and negatives) per optimiser step.
        lr: learning rate.
        optimizer: ``adam``, ``sgd`` (the paper fine-tunes pre-trained NeuMF with it) or,
            for large catalogues, ``sparse-adam`` (:mod:`ncf_lib.scale.optimizers`).
        l2: weight of an L2 penalty on a batch's embedding rows, over the batch size (the
            tuned MF baseline uses it); not part of the logged loss.
        num_ng: sampled negatives per positive, re-drawn every epoch.
        top_k: K of HR@K and NDCG@K.
        seed: seeds negatives, shuffling and dropout.
        select_on: ``validation`` (default) or ``test``: which held-out items choose the
            epoch; ``last`` keeps the final epoch.
        patience: stop after this many epochs without a better selection HR (``None``: never).
        evaluate_start: also evaluate (and let select) the model before training, epoch 0,
            as the paper's code does for pre-trained models.
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
    select_on: str = field(default="validation", metadata={"choices": tuple(SELECTION)})
    patience: int | None = None
    evaluate_start: bool = False
    log_dir: str | None = None
    checkpoint: str | None = None
    device: str = field(default="auto", metadata={"choices": DEVICES})
    progress: bool = True

    def __post_init__(self) -> None:
        finite = lambda x: isinstance(x, (int, float)) and np.isfinite(x)  # noqa: E731
        checks = {
            "epochs": (1 <= self.epochs <= MAX_EPOCHS, f"an integer from 1 to {MAX_EPOCHS:,}"),
            "batch_size": (self.batch_size >= 1, "an integer of at least 1"),
            "lr": (finite(self.lr) and self.lr > 0, "a finite number above 0"),
            "l2": (finite(self.l2) and self.l2 >= 0, "a finite number of at least 0"),
            "num_ng": (self.num_ng >= 0, "an integer of at least 0"),
            "top_k": (self.top_k >= 1, "an integer of at least 1"),
            "seed": (0 <= self.seed <= MAX_SEED, "an integer from 0 to 2**32 - 1"),
            "optimizer": (isinstance(self.optimizer, str) and bool(self.optimizer), "a name"),
            "select_on": (self.select_on in SELECTION, ", ".join(SELECTION)),
            "patience": (self.patience is None or self.patience >= 1, "None or at least 1"),
            "device": (self.device in DEVICES, ", ".join(DEVICES)),
        }
        for name, (ok, expected) in checks.items():
            if not ok:
                raise ConfigError(
                    f"{name} (--{name.replace('_', '-')}) must be {expected}, "
                    f"got {getattr(self, name)!r}"
                )
        if self.patience is not None and self.select_on == "last":
            raise ConfigError(
                "patience (--patience) stops when the selection HR stops improving, and "
                "select_on 'last' (--select-on last) selects no HR: drop one of them"
            )


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: a row per epoch: ``epoch, loss, val_hr, val_ndcg, test_hr, test_ndcg,
            train_seconds, eval_seconds``.
        best_epoch: the selected epoch (0: before training, with ``evaluate_start``).
        best: that epoch's ``test_hr``, ``test_ndcg`` (and validation) metrics.
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


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD at ``config.lr``, ``fused``: the default update in one pass over every
    parameter (NeuMF on MovieLens-1M: about 2x faster per step on a CPU)."""
    if config.optimizer not in OPTIMIZERS:
        raise ConfigError(
            f"optimizer (--optimizer) {config.optimizer!r}: make_optimizer builds "
            f"{' or '.join(OPTIMIZERS)}; build another with fit(..., make_optimizer=...) "
            "(ncf_lib.scale.fit_options builds sparse-adam)"
        )
    optimizer = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[config.optimizer]
    return optimizer(model.parameters(), lr=config.lr, fused=True)


def add_l2_grad_(model: nn.Module, users: torch.Tensor, items: torch.Tensor, weight: float) -> None:
    """After ``backward``: add ``2 * weight * row`` to the ``.grad`` of each embedding row a
    batch uses, per use: the gradient of ``weight *`` their sum of squares, without a pass
    through every table (:func:`lookups`)."""
    with torch.no_grad():
        for table, ids in lookups(model, users, items):
            table.weight.grad.index_add_(0, ids, table.weight[ids], alpha=2 * weight)


def lookups(
    model: nn.Module, users: torch.Tensor, items: torch.Tensor
) -> list[tuple[nn.Embedding, torch.Tensor]]:
    """Each embedding table of ``model`` with the ``(batch,)`` ids it is looked up with: the
    models of :mod:`ncf_lib.models` name every user table ``..user_..`` (``user_embedding``,
    ``gmf_user_embedding``, ``user_bias``) and look up every other table by item."""
    return [
        (module, users if "user" in name else items)
        for name, module in model.named_modules()
        if isinstance(module, nn.Embedding)
    ]


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
    train_epoch: Callable[..., float] = train_epoch,
    evaluate: Callable[..., dict[str, float]] = evaluate,
    make_sampler: Callable[[NCFData, int, int, torch.device], NegativeSampler] = NegativeSampler,
    make_optimizer: Callable[[nn.Module, TrainConfig], torch.optim.Optimizer] = make_optimizer,
) -> FitResult:
    """Train ``model`` on ``data``; return the history, with the selected epoch's weights.

    Each epoch draws fresh negatives, runs :func:`train_epoch` over shuffled batches and
    evaluates HR@K / NDCG@K on the validation and test items. With ``config.checkpoint``,
    the best weights so far and what resuming needs are saved after every epoch.

    Args:
        on_epoch: called with each history row.
        resume: the checkpoint of an interrupted ``fit`` of the same model, data and config:
            it continues after its last epoch and ends with an uninterrupted run's numbers.
        train_epoch: ``(model, optimizer, batches, *, l2) -> mean loss``, one epoch.
        evaluate: ``(scorer, eval_set, k, *, device) -> {"hr", "ndcg"}``.
        make_sampler: ``(data, num_ng, seed, device) -> sampler`` with ``epoch()``, ``kind``,
            ``state()`` and ``load_state()``.
        make_optimizer: ``(model, config) -> optimizer``.

    The last four are what a bigger or faster run replaces (:func:`ncf_lib.scale.fit_options`
    builds them for ``torchrun``, ``sparse-adam``, a GPU or hand-written gradients).
    """
    if config.select_on == "validation" and data.validation is None:
        raise ConfigError("select_on='validation' needs data built with validation=True")
    check_top_k(config.top_k, data.test.candidates.shape[1], "candidates per user")
    sizes = model.config.factor_num, model.config.layers
    require(
        epoch_bytes(data.n_train, config.num_ng, config.batch_size, *sizes),
        f"an epoch of {data.n_train:,} positives with {config.num_ng} negatives each",
        "lower num_ng (--num-ng) or batch_size (--batch-size)",
    )
    device = resolve_device(config.device)
    model.to(device)
    torch.manual_seed(config.seed)
    sampler = make_sampler(data, config.num_ng, config.seed, device)
    optimizer = make_optimizer(model, config)
    state = TrainingState(next_epoch=0 if config.evaluate_start else 1)
    if resume is not None:
        state = restore_training(resume, model, optimizer, sampler)
    log = None if config.log_dir is None else EventLog(config.log_dir)
    started = time.perf_counter()
    while state.next_epoch <= config.epochs and not state.stopped:
        epoch, clock = state.next_epoch, time.perf_counter()
        loss = float("nan")  # epoch 0: the model as given, evaluated only
        if epoch > 0:
            users, items, labels = sampler.epoch()
            parts = _progress(batches(users, items, labels, batch_size=config.batch_size),
                              users.shape[0], config, epoch)  # fmt: skip
            loss = train_epoch(model, optimizer, parts, l2=config.l2)
            if not np.isfinite(loss):
                raise TrainingDivergedError(_diverged(epoch, loss, config))
        row = {"epoch": epoch, "loss": loss, "train_seconds": time.perf_counter() - clock}
        clock = time.perf_counter()
        model.eval()
        for split, eval_set in (("val", data.validation), ("test", data.test)):
            if eval_set is not None:
                metrics = evaluate(model.score, eval_set, config.top_k, device=device)
                row[f"{split}_hr"], row[f"{split}_ndcg"] = metrics["hr"], metrics["ndcg"]
        row["eval_seconds"] = time.perf_counter() - clock
        _select(state, row, model, config)
        if log is not None:
            log.scalars({f"epoch/{k}": row[k] for k in LOGGED if np.isfinite(row.get(k, np.nan))},
                        epoch)  # fmt: skip
        if config.checkpoint is not None:
            save_training(config.checkpoint, model, data, asdict(config), state, optimizer, sampler)
        if on_epoch is not None:
            on_epoch(row)
    model.load_state_dict(state.best_weights)
    best = state.best_metrics()
    if log is not None:
        settings = {k: v for k, v in asdict(config).items() if isinstance(v, (int, float, str))}
        settings.update({k: str(v) for k, v in config_dict(model.config).items()})
        log.hyperparameters(
            {**settings, "model": type(model).__name__},
            {f"best/{k}": v for k, v in best.items()},
            state.best_epoch,
        )
        log.close()
    checkpoint = None if config.checkpoint is None else Path(config.checkpoint)
    history, seconds = pd.DataFrame(state.history), time.perf_counter() - started
    return FitResult(history, state.best_epoch, best, model, checkpoint, seconds)


def _select(state: TrainingState, row: dict, model: Recommender, config: TrainConfig) -> None:
    """Record an epoch: keep its weights if its selection HR is the best yet (``last``:
    always), else count it towards early stopping."""
    column = SELECTION[config.select_on]
    hr = row["test_hr"] if column is None else row[column]
    state.history.append(row)
    state.next_epoch = row["epoch"] + 1
    if column is None or hr > state.best_hr:
        state.best_epoch, state.best_hr, state.stale = row["epoch"], hr, 0
        state.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    else:
        state.stale += 1
        state.stopped = config.patience is not None and state.stale >= config.patience


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


def _progress(parts: Iterator, rows: int, config: TrainConfig, epoch: int) -> Iterator:
    """The epoch's batches of ``rows`` rows behind a progress bar, when ``config.progress``."""
    return tqdm(
        parts,
        total=-(-rows // config.batch_size),
        desc=f"epoch {epoch}/{config.epochs}",
        leave=False,
        disable=not config.progress,
        mininterval=0.5,
    )


def _diverged(epoch: int, loss: float, config: TrainConfig) -> str:
    causes = f"the learning rate (lr={config.lr}, {config.optimizer})"
    if config.l2:
        causes += f" or the L2 weight (l2={config.l2})"
    return f"training diverged in epoch {epoch}: the loss is {loss}; lower {causes}"
