"""A training run as ``python -m ncf_lib train`` runs one: one model or the three stages of
NeuMF with pre-training, new or resumed, each writing its own checkpoint and logs
(:func:`train_run`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

from ncf_lib.checkpoints import Checkpoint, check_same_data
from ncf_lib.dataset import NCFData
from ncf_lib.errors import CheckpointError, Interrupted
from ncf_lib.models import ModelConfig, model_name
from ncf_lib.pretraining import pretrain_neumf
from ncf_lib.runs.stages import Stages, command, unfinished
from ncf_lib.train import FitResult, TrainConfig, train_model


@dataclass(frozen=True)
class Pretraining:
    """NeuMF with pre-training (:func:`~ncf_lib.pretraining.pretrain_neumf`).

    Attributes:
        alpha: weight of GMF in the pre-trained NeuMF.
        finetune: changes to the paper's fine-tuning (:data:`~ncf_lib.pretraining.FINETUNE`),
            e.g. ``{"lr": 0.01}``.
        parts: ``{"gmf" | "mlp": (path, checkpoint)}``: parts trained already.
    """

    alpha: float = 0.5
    finetune: dict = field(default_factory=dict)
    parts: dict[str, tuple[str, Checkpoint]] = field(default_factory=dict)


def train_run(
    data: NCFData,
    name: str,
    config: TrainConfig,
    model_config: ModelConfig = ModelConfig(),
    *,
    out: str = "checkpoints",
    log_dir: str | None = None,
    resume: tuple[str, Checkpoint] | None = None,
    pretraining: Pretraining | None = None,
    fit_options: dict | None = None,
    main: bool = True,
    on_epoch: Callable[[dict], None] = lambda row: None,
    say: Callable[[str], None] = print,
) -> FitResult:
    """Train model ``name`` on ``data`` (with ``pretraining``: GMF, MLP, then NeuMF), each
    stage writing its checkpoint in ``out`` and its logs in a new folder in ``log_dir``.

    Args:
        resume: ``(path, checkpoint)`` of an interrupted run on ``data``: it continues, and
            writes that checkpoint again.
        fit_options: keyword arguments of :func:`ncf_lib.train.fit` for every stage (e.g.
            :func:`ncf_lib.scale.fit_options`'s).
        main: this process writes (under ``torchrun``: rank 0 only).
        on_epoch: called with each history row (a resumed run's saved rows first).
        say: where stages are announced.

    Raises:
        CheckpointError: a checkpoint trained on other data, or a part of another model.
        Interrupted: Ctrl-C or SIGTERM; the message says what was kept and how to go on.
    """
    parts = {} if pretraining is None else pretraining.parts
    for part, (path, ckpt) in [*parts.items(), *([("resume", resume)] if resume else [])]:
        check_same_data(path, ckpt.fingerprint, data)
        if part != "resume" and model_name(ckpt.model) != part:
            raise CheckpointError(
                f"--{part} {path} holds a {type(ckpt.model).__name__}, not a {part.upper()}"
            )
        if part != "resume" and (done := unfinished(ckpt)):
            raise CheckpointError(
                f"--{part} {path} holds an unfinished run ({done}); a pre-trained part must be "
                "a finished one: finish it first with "
                + command("python", "-m", "ncf_lib", "train", "--resume", path)
            )
    with ExitStack() as locks:
        stages = Stages(
            data.name, locks, out=out, resume=resume[0] if resume else None, log_dir=log_dir,
            main=main, say=say,
        )  # fmt: skip

        def each(row: dict) -> None:
            stages.last = row
            on_epoch(row)

        try:
            if pretraining is not None:
                for part, (path, _) in parts.items():
                    say(f"== {part}: loaded from {path} ==")
                trained = {part: ckpt.model for part, (_, ckpt) in parts.items()}
                return pretrain_neumf(
                    data, config, model_config, alpha=pretraining.alpha,
                    finetune=pretraining.finetune, **trained, stage_config=stages.configure,
                    on_epoch=each, **(fit_options or {}),
                ).neumf  # fmt: skip
            stage = stages.configure(name, config)
            if resume is not None:
                say(f"resuming after epoch {resume[1].training['epoch']} from {resume[0]}")
                for row in resume[1].training["history"]:
                    on_epoch(row)
            return train_model(
                name, data, stage, model_config, on_epoch=each,
                resume=resume[1] if resume else None, **(fit_options or {}),
            )  # fmt: skip
        except KeyboardInterrupt:
            raise Interrupted(stages.interrupted()) from None
