"""Training: ``fit(model, data, config)``, model selection on validation, checkpoints.

**Model selection without peeking at the test set.** The seed notebook, the paper's code and
the popular ports keep the epoch with the best *test* HR, which reports the maximum of a noisy
curve and flatters every model. Here, by default, each user's second-latest interaction is a
validation item with its own 99 sampled negatives: the epoch with the best validation HR@K is
selected (and early stopping watches it), and the *test* metrics of that epoch are reported.
Per-epoch test metrics are still computed and printed so the whole curve can be seen.
``select_on="test"`` reproduces the seed's behaviour for comparison (build the data with
``validation=False`` then, so the validation item is trained on, as in the seed).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from ncf_lib.data import DeviceSampler, NCFData, batches, epoch_arrays
from ncf_lib.metrics import evaluate
from ncf_lib.models import (MODELS, ModelConfig, NeuMF, Recommender, build_model,
                            config_dict, model_name)


@dataclass
class TrainConfig:
    """Training hyper-parameters; the defaults are the seed notebook's argparse defaults.

    Attributes:
        epochs: passes over the training positives (each with fresh negatives).
        batch_size: rows (positives and negatives) per optimiser step.
        lr: learning rate.
        optimizer: ``adam`` (default) or ``sgd`` (the paper fine-tunes pre-trained NeuMF
            with plain SGD).
        l2: weight of the L2 penalty on the embedding rows of each batch, divided by the
            batch size (default 0, as the seed and the paper's default; the tuned MF
            baseline uses it). Applied as a gradient; the logged loss is the data loss.
        num_ng: sampled negatives per positive, re-drawn every epoch.
        top_k: K of HR@K and NDCG@K.
        seed: seeds negatives, shuffling, dropout (and the model when the CLI builds it).
        select_on: ``validation`` (default) or ``test``: which held-out items choose the
            epoch; ``last`` keeps the final epoch (to re-train for an epoch count chosen
            earlier on validation).
        patience: stop after this many epochs without a better selection HR (``None``: never).
        hand_gradients: on the CPU, train with the models' hand-written backward pass
            (:meth:`~ncf_lib.models.Recommender.loss_and_grads_`) and call Adam's fused
            kernel directly: the same numbers as autograd and ``torch.optim.Adam`` (tested
            bit for bit), about 1.5x faster per step on 2 cores. ``False``: autograd and
            ``torch.optim``, the reference. Models with dropout always use autograd.
        evaluate_start: also evaluate the model before the first epoch (history row
            ``epoch 0``) and let that be selected. For pre-trained models, as the paper's code
            does ("Init: HR = ..."): when fine-tuning does not help on validation, the
            selected model is the pre-trained one (``best_epoch`` 0).
        log_dir: TensorBoard folder for this run (``None``: no logging).
        checkpoint: where to save the best epoch's model (``None``: keep it in memory only).
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
    hand_gradients: bool = True
    evaluate_start: bool = False
    log_dir: str | None = None
    checkpoint: str | None = None
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1, "lr": self.lr > 0,
            "num_ng": self.num_ng >= 0, "top_k": self.top_k >= 1, "l2": self.l2 >= 0,
            "optimizer": self.optimizer in ("adam", "sgd"),
            "select_on": self.select_on in ("validation", "test", "last"),
            "patience": self.patience is None or self.patience >= 1,
            "device": self.device in ("auto", "cpu", "cuda"),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid training setting {bad[0]}={getattr(self, bad[0])!r}")


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
        raise ValueError("device=cuda but no CUDA device is available")
    return torch.device(name)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD with the fused kernel: the same update as the plain loop, in one pass
    over the parameters (NeuMF on MovieLens-1M: about 2x faster per step on CPU). On the
    CPU with ``hand_gradients``, Adam is a :class:`KernelAdam`."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, fused=True)
    params = list(model.parameters())
    if config.hand_gradients and KernelAdam.available(params):
        return KernelAdam(params, lr=config.lr)
    return torch.optim.Adam(params, lr=config.lr, fused=True)


class KernelAdam(torch.optim.Adam):
    """``torch.optim.Adam(fused=True)`` whose ``step`` calls the fused kernel directly.

    The same kernel with the same arguments, so the same update (tested bit for bit against
    ``torch.optim.Adam``); what it skips is ``Optimizer.step``'s per-step bookkeeping
    (regrouping tensors, one step counter per parameter, the profiler and hook wrapper
    around every ``step``), about a fifth of a NeuMF step on 2 CPU cores. For one parameter
    group of CPU float32 tensors without ``amsgrad``, every parameter with a gradient at
    every step (what :func:`train_epoch` gives it); step hooks are not supported.
    """

    def __init__(self, params, lr: float = 0.001) -> None:
        super().__init__(params, lr=lr, fused=True)
        self._lists: tuple | None = None

    @staticmethod
    def available(params: list[torch.Tensor]) -> bool:
        """Whether the fused CPU kernel can take these parameters."""
        return (hasattr(torch, "_fused_adam_")
                and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in params))

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        self._lists = None

    def _patch_step_function(self) -> None:
        """Leave ``step`` unwrapped (``Optimizer`` wraps it in a profiler range and a loop
        over step hooks, some 15 us per call)."""
        self._zero_grad_profile_name = f"Optimizer.zero_grad#{type(self).__name__}.zero_grad"

    def register_step_pre_hook(self, hook):
        raise NotImplementedError("KernelAdam does not call step hooks; use torch.optim.Adam")

    register_step_post_hook = register_step_pre_hook

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("KernelAdam takes no closure")
        if self._lists is None:
            self._lists = self._build_lists()
        params, exp_avgs, exp_avg_sqs, steps = self._lists
        grads = [p.grad for p in params]
        if any(g is None for g in grads):
            raise ValueError("KernelAdam needs a gradient for every parameter at every step")
        if all(t is steps[0] for t in steps):
            steps[0].add_(1)
        else:
            torch._foreach_add_(steps, 1)
        group = self.param_groups[0]
        beta1, beta2 = group["betas"]
        torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=group["lr"],
                           beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                           eps=group["eps"], amsgrad=False, maximize=False)

    def _build_lists(self) -> tuple:
        if len(self.param_groups) != 1 or self.param_groups[0]["amsgrad"]:
            raise ValueError("KernelAdam supports one parameter group without amsgrad")
        params = self.param_groups[0]["params"]
        shared_step = torch.zeros((), dtype=torch.float32)
        for p in params:
            if not self.state[p]:  # fresh: Adam's own initial state, one shared step counter
                self.state[p] = {"step": shared_step, "exp_avg": torch.zeros_like(p),
                                 "exp_avg_sq": torch.zeros_like(p)}
        return ([p for p in params], [self.state[p]["exp_avg"] for p in params],
                [self.state[p]["exp_avg_sq"] for p in params],
                [self.state[p]["step"] for p in params])


def fit(model: Recommender, data: NCFData, config: TrainConfig = TrainConfig(), *,
        on_epoch: Callable[[dict], None] | None = None) -> FitResult:
    """Train ``model`` on ``data``, select the best epoch, return the history.

    Each epoch draws fresh negatives, runs one pass in shuffled batches with
    ``BCEWithLogitsLoss``, then evaluates HR@K / NDCG@K on the validation and test items.
    The selected epoch's weights are kept (and checkpointed) and restored at the end.

    Args:
        model: a fresh or pre-trained :class:`~ncf_lib.models.Recommender`.
        data: from :func:`ncf_lib.data.build_dataset`.
        config: hyper-parameters.
        on_epoch: called with each history row (the CLI prints it).
    """
    if config.select_on == "validation" and data.validation is None:
        raise ValueError("select_on='validation' needs data built with validation=True")
    device = resolve_device(config.device)
    model.to(device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    # On a GPU, negatives are drawn on the device; on the CPU with NumPy (as before).
    sampler = (DeviceSampler(data, config.num_ng, config.seed, device) if device.type == "cuda"
               else None)
    optimizer = make_optimizer(model, config)
    writer = _writer(config.log_dir)
    rows: list[dict] = []
    best_epoch, best_hr, best_state, stale = 0, -1.0, None, 0
    started = time.perf_counter()
    step = 0
    for epoch in range(0 if config.evaluate_start else 1, config.epochs + 1):
        clock = time.perf_counter()
        loss_sum, n_rows = float("nan"), 1
        if epoch > 0:  # epoch 0: the model as given, evaluated only
            tensors = (list(sampler.epoch()) if sampler is not None
                       else list(epoch_arrays(data, config.num_ng, rng)))
            loss_sum, step = train_epoch(model, optimizer, tensors, config, epoch=epoch,
                                         step=step, writer=writer)
            n_rows = tensors[0].shape[0]
            if not np.isfinite(loss_sum):
                raise FloatingPointError(
                    f"training diverged in epoch {epoch}: the loss is {loss_sum / n_rows}; "
                    f"lower the learning rate (lr={config.lr}, {config.optimizer})")
        train_seconds = time.perf_counter() - clock

        clock = time.perf_counter()
        model.eval()
        row = {"epoch": epoch, "loss": loss_sum / n_rows}
        for split, eval_set in (("val", data.validation), ("test", data.test)):
            if eval_set is not None:
                metrics = evaluate(model.score, eval_set, config.top_k, device=device)
                row[f"{split}_hr"], row[f"{split}_ndcg"] = metrics["hr"], metrics["ndcg"]
        row.update(train_seconds=train_seconds, eval_seconds=time.perf_counter() - clock)
        rows.append(row)
        if writer is not None:
            for key in ("loss", "val_hr", "val_ndcg", "test_hr", "test_ndcg"):
                if key in row and (epoch > 0 or key != "loss"):
                    writer.add_scalar(f"epoch/{key}", row[key], epoch)
        if on_epoch is not None:
            on_epoch(row)

        selection = {"validation": row.get("val_hr"), "test": row["test_hr"],
                     "last": epoch}[config.select_on]
        if selection > best_hr:
            best_epoch, best_hr, stale = epoch, selection, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if config.patience is not None and stale >= config.patience:
                break
    model.load_state_dict(best_state)
    history = pd.DataFrame(rows)
    best_row = next(row for row in rows if row["epoch"] == best_epoch)
    best = {k: v for k, v in best_row.items() if k.endswith(("_hr", "_ndcg"))}
    if writer is not None:
        hparams = {k: v for k, v in asdict(config).items() if isinstance(v, (int, float, str))}
        hparams.update({k: str(v) for k, v in config_dict(model.config).items()})
        hparams["model"] = model_name(model)
        writer.add_hparams(hparams, {f"best/{k}": v for k, v in best.items()},
                           name="hparams", global_step=best_epoch)
        writer.close()
    path = None
    if config.checkpoint is not None:
        path = save_checkpoint(config.checkpoint, model, data, config,
                               epoch=best_epoch, metrics=best)
    return FitResult(history, best_epoch, best, model, path, time.perf_counter() - started)


def train_epoch(model: Recommender, optimizer: torch.optim.Optimizer,
                tensors: list[torch.Tensor], config: TrainConfig, *, epoch: int = 1,
                step: int = 0, writer=None) -> tuple[float, int]:
    """One pass over an epoch's shuffled ``(users, items, labels)`` in slices.

    Returns the summed loss over all rows and the global step count after the epoch; logs
    the batch loss to ``writer`` every 100 steps.
    """
    model.train()
    loss_fn = nn.BCEWithLogitsLoss()
    total = torch.zeros((), device=tensors[0].device)
    n_batches = -(-tensors[0].shape[0] // config.batch_size)
    bar = tqdm(batches(*tensors, batch_size=config.batch_size), total=n_batches,
               desc=f"epoch {epoch}/{config.epochs}", leave=False,
               disable=not config.progress, mininterval=0.5)
    by_hand = (config.hand_gradients and model.has_hand_gradients
               and tensors[0].device.type == "cpu")
    for users, items, labels in bar:
        if by_hand:  # same gradients as below, without an autograd graph
            loss = model.loss_and_grads_(users, items, labels)
        else:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(users, items), labels)
            loss.backward()
        if config.l2:  # the penalty's gradient, added directly (the loss shown excludes it)
            model.add_l2_grad_(users, items, config.l2 / labels.shape[0])
        optimizer.step()
        total += loss.detach() * labels.shape[0]
        step += 1
        if writer is not None and step % 100 == 0:
            writer.add_scalar("train/loss", loss.item(), step)
    return float(total), step


def _writer(log_dir: str | None):
    if log_dir is None:
        return None
    from tensorboardX import SummaryWriter

    return SummaryWriter(log_dir)


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------


def save_checkpoint(path: str | Path, model: Recommender, data: NCFData,
                    config: TrainConfig, *, epoch: int, metrics: dict[str, float]) -> Path:
    """Save ``state_dict`` + configs + id maps, atomically (temporary file, then rename).

    Not a pickled module (the seed saved ``torch.save(model)``, which ``torch.load`` refuses
    by default since PyTorch 2.6 and which breaks when the class moves): only tensors and
    plain values, loadable with ``weights_only=True``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": 1,
        "model": model_name(model),
        "model_config": config_dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "n_users": model.n_users,
        "n_items": model.n_items,
        "user_ids": torch.from_numpy(np.asarray(data.user_ids, dtype=np.int64)),
        "item_ids": torch.from_numpy(np.asarray(data.item_ids, dtype=np.int64)),
        "dataset": data.name,
        "data": {"num_ng_test": int(data.test.candidates.shape[1] - 1),
                 "validation": data.validation is not None, "seed": data.seed},
        "train_config": json.dumps(asdict(config)),
        "epoch": epoch,
        "metrics": metrics,
    }
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the model (in eval mode) and what it was trained on."""

    model: Recommender
    user_ids: np.ndarray
    item_ids: np.ndarray
    dataset: str
    data: dict
    train_config: dict
    epoch: int
    metrics: dict[str, float]


def load_checkpoint(path: str | Path, device: str = "cpu") -> Checkpoint:
    """Rebuild a model from :func:`save_checkpoint`'s file (no training code needed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
        name = payload["model"]
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"{path}: not an ncf_lib checkpoint ({err.__class__.__name__})") from None
    config = ModelConfig(**{**payload["model_config"],
                            "layers": tuple(payload["model_config"]["layers"])})
    model = MODELS[name](payload["n_users"], payload["n_items"], config)
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return Checkpoint(model, payload["user_ids"].numpy(), payload["item_ids"].numpy(),
                      payload["dataset"], payload["data"], json.loads(payload["train_config"]),
                      payload["epoch"], payload["metrics"])


# --------------------------------------------------------------------------------------
# Pre-training
# --------------------------------------------------------------------------------------


#: Fine-tuning of a pre-trained NeuMF: plain SGD, as in the paper, with a learning rate
#: chosen on the validation items of MovieLens-100K (0.001, as one port uses, barely moves
#: the weights). The pre-trained model itself is evaluated first and can be selected, as in
#: the paper's code: on MovieLens-100K fine-tuning often does not improve it.
FINETUNE = {"optimizer": "sgd", "lr": 0.05, "evaluate_start": True}


def pretrained_neumf(gmf: Recommender, mlp: Recommender, alpha: float = 0.5) -> NeuMF:
    """NeuMF from a trained GMF and MLP (see :meth:`NeuMF.from_pretrained`)."""
    if model_name(gmf) != "gmf" or model_name(mlp) != "mlp":
        raise ValueError("pre-training needs a GMF checkpoint and an MLP checkpoint "
                         f"(got {model_name(gmf)} and {model_name(mlp)})")
    return NeuMF.from_pretrained(gmf, mlp, alpha)


def train_model(name: str, data: NCFData, config: TrainConfig,
                model_config: ModelConfig = ModelConfig(), **kwargs) -> FitResult:
    """Seed, build a fresh model by name and :func:`fit` it."""
    seed_everything(config.seed)
    return fit(build_model(name, data.n_users, data.n_items, model_config), data, config,
               **kwargs)
