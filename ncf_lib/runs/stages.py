"""A run's files: per stage a checkpoint (locked while this run writes it) and a TensorBoard
folder of its own; an unfinished run is never replaced unasked; an interruption says what
was kept and how to go on."""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from ncf_lib.checkpoints import load_checkpoint
from ncf_lib.errors import ConfigError
from ncf_lib.files import current_umask, exclusive_lock
from ncf_lib.train import TrainConfig


def slug(text: str) -> str:
    """A file-name part for a dataset: its name, or for a file its folder and name (two
    ``ratings.csv`` in two folders get two names)."""
    path = Path(text)
    name = f"{path.parent.name}-{path.name}" if path.is_file() and path.parent.name else path.name
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name or text).strip("_") or "data"


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Hold ``path``'s lock (a hidden file beside it) while this process writes it.

    Raises:
        ConfigError: another run holds it.
    """
    path = Path(path)
    try:
        with exclusive_lock(path.with_name(f".{path.name}.lock"), wait=False):
            yield
    except BlockingIOError:
        raise ConfigError(
            f"{path} is being written by another training run; wait for it to finish, or "
            "give this run another --out folder"
        ) from None


def unfinished(path: Path) -> str | None:
    """How far the unfinished run saved in ``path`` got (``None``: no such run there)."""
    if not path.is_file():
        return None
    ckpt = load_checkpoint(path)
    state, epochs = ckpt.training, ckpt.train_config["epochs"]
    if state is None or state["stopped"] or state["next_epoch"] > epochs:
        return None
    return f"after epoch {state['next_epoch'] - 1} of {epochs}"


def refuse_unfinished(out: str, dataset: str, stages: list[str]) -> None:
    """Refuse to start stages whose checkpoint in ``out`` holds an unfinished run."""
    for stage in stages:
        path = Path(out) / f"{slug(dataset)}-{stage}.pt"
        if done := unfinished(path):
            raise ConfigError(
                f"{path} holds an unfinished run ({done}): continue it with --resume {path}, "
                "or start again with --overwrite"
            )


class Stages:
    """The stages of one ``train`` command: each one's checkpoint (locked while this run
    writes it) and TensorBoard folder, and how far the current one got.

    Args:
        out: checkpoint folder; ``resume``: the checkpoint a resumed run writes again.
        log_dir: TensorBoard folder (``None``: no logs).
        main: this process writes (under ``torchrun``: rank 0 only).
        say: where each stage is announced.
    """

    def __init__(
        self, data_name: str, locks: ExitStack, *, out: str, resume: str | None,
        log_dir: str | None, main: bool = True, say: Callable[[str], None] = print,
    ) -> None:  # fmt: skip
        self.data_name, self.locks, self.main, self.say = data_name, locks, main, say
        self.out, self.resume, self.log_dir = out, resume, log_dir
        self.checkpoint: Path | None = None
        self.stage, self.last = "", None

    def configure(self, name: str, config: TrainConfig) -> TrainConfig:
        """``(stage, config) -> config`` with the stage's files, announced."""
        tag = f"{slug(self.data_name)}-{name}"
        checkpoint = Path(self.resume or Path(self.out) / f"{tag}.pt")
        log_dir = None
        if self.main:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            self.locks.enter_context(writing(checkpoint))
            if self.log_dir is not None:  # a folder of its own, even for two runs in a second
                Path(self.log_dir).mkdir(parents=True, exist_ok=True)
                stamp = time.strftime("%Y%m%d-%H%M%S")
                log_dir = tempfile.mkdtemp(prefix=f"{tag}-{stamp}-", dir=self.log_dir)
                os.chmod(log_dir, 0o777 & ~current_umask())
        self.checkpoint, self.stage, self.last = checkpoint, name, None
        self.say(
            f"== {name}: {config.epochs} epochs, {config.optimizer} lr {config.lr}, "
            f"batch {config.batch_size}, {config.num_ng} negatives per positive, "
            f"selecting on {config.select_on} =="
        )
        return replace(config, checkpoint=str(checkpoint) if self.main else None, log_dir=log_dir)

    def interrupted(self) -> str:
        """One line: what an interruption kept, and how to go on."""
        if self.checkpoint is None:
            return "interrupted before training started; nothing was written"
        if self.last is None and not self.resume:
            return (
                f"interrupted in the first epoch of {self.stage}; nothing was saved "
                f"({self.checkpoint} was not written by this run)"
            )
        done = "before a new epoch finished"
        if self.last is not None:
            done = f"after epoch {self.last['epoch']}"
        return (
            f"interrupted {done} of {self.stage}: {self.checkpoint} "
            "holds the best epoch so far and can be resumed with "
            f"python -m ncf_lib train --resume {self.checkpoint}"
        )
