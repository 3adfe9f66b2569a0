"""The paper's pre-training: GMF and MLP first, then NeuMF initialised from both, fine-tuned.

He et al. (2017, section 3.4.1) train GMF and MLP with Adam, build NeuMF from their weights
with the prediction layer ``[alpha * h_gmf, (1 - alpha) * h_mlp]`` (alpha = 0.5), and
fine-tune it with plain SGD (Adam's moments were not saved with the parts):
:func:`pretrain_neumf`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from ncf_lib.dataset import NCFData
from ncf_lib.errors import ConfigError
from ncf_lib.metrics import evaluate
from ncf_lib.models import GMF, MLP, ModelConfig, NeuMF
from ncf_lib.train import FitResult, TrainConfig, fit, seed_everything, train_model

#: Fine-tuning: SGD as in the paper, its rate chosen on MovieLens-100K's validation items
#: (0.001 barely moves the weights); the pre-trained model may be selected, as in the paper.
FINETUNE = {"optimizer": "sgd", "lr": 0.05, "evaluate_start": True}
#: Weights of GMF tried by :func:`choose_alpha`, the paper's first (it wins ties).
ALPHA_GRID = (0.5, 0.3, 0.7)


def pretrained_neumf(gmf: GMF, mlp: MLP, alpha: float = 0.5) -> NeuMF:
    """The paper's pre-training: NeuMF with embeddings and tower copied from a trained GMF and
    MLP and the prediction layer ``[alpha * h_gmf, (1 - alpha) * h_mlp]`` (its bias likewise),
    so that it starts as ``alpha * GMF + (1 - alpha) * MLP`` in logits."""
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha (--alpha) weighs GMF against MLP: in [0, 1], got {alpha}")
    if type(gmf) is not GMF or type(mlp) is not MLP:
        kinds = f"{type(gmf).__name__} and {type(mlp).__name__}"
        raise ConfigError(f"pre-training needs a GMF and an MLP (got {kinds})")
    if (gmf.n_users, gmf.n_items) != (mlp.n_users, mlp.n_items):
        sizes = f"{gmf.n_users}x{gmf.n_items} and {mlp.n_users}x{mlp.n_items}"
        raise ConfigError(f"GMF and MLP were trained on different users or items ({sizes})")
    config = ModelConfig(gmf.config.factor_num, mlp.config.layers, mlp.config.dropout)
    model = NeuMF(gmf.n_users, gmf.n_items, config)
    with torch.no_grad():
        for name in ("user_embedding", "item_embedding"):
            getattr(model, f"gmf_{name}").weight.copy_(getattr(gmf, name).weight)
            getattr(model, f"mlp_{name}").weight.copy_(getattr(mlp, name).weight)
        model.tower.load_state_dict(mlp.tower.state_dict())
        h = torch.cat([alpha * gmf.output.weight, (1 - alpha) * mlp.output.weight], dim=1)
        model.output.weight.copy_(h)
        model.output.bias.copy_(alpha * gmf.output.bias + (1 - alpha) * mlp.output.bias)
    return model


def choose_alpha(
    gmf: GMF, mlp: MLP, data: NCFData, grid: tuple[float, ...] = ALPHA_GRID, k: int = 10
) -> float:
    """The ``alpha`` of ``grid`` whose pre-trained NeuMF, before fine-tuning, has the best
    validation HR@k."""
    if data.validation is None:
        raise ConfigError("choosing alpha needs data built with validation=True")
    hr = {
        a: evaluate(pretrained_neumf(gmf, mlp, a).eval().score, data.validation, k)["hr"]
        for a in grid
    }
    return max(grid, key=lambda a: hr[a])


def finetune_config(config: TrainConfig, **changes) -> TrainConfig:
    """``config`` with :data:`FINETUNE`'s settings (then ``changes``) for the NeuMF stage."""
    return replace(config, **{**FINETUNE, **changes})


@dataclass
class PretrainResult:
    """What :func:`pretrain_neumf` returns: each stage's fit (``None`` for a part that was
    given already trained) and the ``alpha`` used."""

    gmf: FitResult | None
    mlp: FitResult | None
    neumf: FitResult
    alpha: float


def pretrain_neumf(
    data: NCFData,
    config: TrainConfig,
    model_config: ModelConfig = ModelConfig(),
    *,
    alpha: float | None = 0.5,
    gmf: GMF | None = None,
    mlp: MLP | None = None,
    finetune: dict | None = None,
    stage_config: Callable[[str, TrainConfig], TrainConfig] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    **fit_options,
) -> PretrainResult:
    """Train GMF and MLP with ``config`` (unless given), then fine-tune NeuMF built from them.

    Args:
        config: the GMF and MLP stages'; NeuMF's is :func:`finetune_config` of it with
            ``finetune``'s changes (e.g. ``{"lr": 0.01}``).
        alpha: weight of GMF; ``None``: chosen on validation (:func:`choose_alpha`).
        gmf, mlp: parts trained already (e.g. loaded from checkpoints).
        stage_config: ``(stage, config) -> config`` for ``gmf``, ``mlp`` and
            ``neumf-pretrained`` (e.g. a checkpoint path each).
        on_epoch, fit_options: passed to :func:`ncf_lib.train.fit` in every stage (e.g.
            :func:`ncf_lib.scale.fit_options`'s).
    """
    stage = stage_config or (lambda _, c: c)
    fits: dict[str, FitResult | None] = {"gmf": None, "mlp": None}
    parts = {"gmf": gmf, "mlp": mlp}
    for name in ("gmf", "mlp"):
        if parts[name] is None:
            fits[name] = train_model(
                name, data, stage(name, config), model_config, on_epoch=on_epoch, **fit_options
            )
            parts[name] = fits[name].model
    if alpha is None:
        alpha = choose_alpha(parts["gmf"], parts["mlp"], data, k=config.top_k)
    tuned = stage("neumf-pretrained", finetune_config(config, **(finetune or {})))
    seed_everything(tuned.seed)
    model = pretrained_neumf(parts["gmf"], parts["mlp"], alpha)
    neumf = fit(model, data, tuned, on_epoch=on_epoch, **fit_options)
    return PretrainResult(fits["gmf"], fits["mlp"], neumf, alpha)
