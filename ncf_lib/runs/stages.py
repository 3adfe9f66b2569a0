"""A run's files: per stage a checkpoint (locked while this run writes it) and a TensorBoard
folder of its own; an unfinished run is never replaced unasked; an interruption says what
was kept and how to go on."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from ncf_lib.checkpoints import Checkpoint, load_checkpoint
from ncf_lib.dataset import NCFData
from ncf_lib.errors import ConfigError
from ncf_lib.files import current_umask, exclusive_lock
from ncf_lib.train import TrainConfig


def command(*words: object) -> str:
    """A command for the user to paste: each word shell-quoted (a path with a space or a
    quote stays one word)."""
    return " ".join(shlex.quote(str(word)) for word in words)


def slug(text: str) -> str:
    """A file-name part for a dataset: a known dataset's name (``ml-1m``, a synthetic shape),
    or for a file or folder its name and a short hash of the path it resolves to (two
    ``data/ratings.csv`` in two folders, or ``ml 100k`` beside ``ml_100k``, get two names;
    ``./x`` and ``x/../x`` one)."""
    path = Path(text)
    if not path.exists():
        return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_") or "data"
    real = path.resolve()
    name = f"{real.parent.name}-{real.name}" if real.is_file() else real.name
    tag = hashlib.sha256(str(real).encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9.-]+', '_', name).strip('_') or 'data'}-{tag}"


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


def unfinished(ckpt: Checkpoint) -> str | None:
    """How far the unfinished run saved in ``ckpt`` got (``None``: a finished run)."""
    state, epochs = ckpt.training, ckpt.train_config["epochs"]
    if state is None or state["stopped"] or state["next_epoch"] > epochs:
        return None
    return f"after epoch {state['next_epoch'] - 1} of {epochs}"


def refuse_to_replace(out: str, data: NCFData, stages: list[str]) -> None:
    """Refuse to start stages whose checkpoint in ``out`` holds an unfinished run, or a run
    on other data than ``data`` (a file edited since, say); a finished run on ``data`` may be
    trained again."""
    for stage in stages:
        path = Path(out) / f"{slug(data.name)}-{stage}.pt"
        if not path.is_file():
            continue
        ckpt = load_checkpoint(path)
        if done := unfinished(ckpt):
            raise ConfigError(
                f"{path} holds an unfinished run ({done}): continue it with "
                f"{command('--resume', path)}, or start again with --overwrite"
            )
        if ckpt.fingerprint != data.fingerprint:
            raise ConfigError(
                f"{path} holds a run on other data than {data.name} now holds (changed since?): "
                "keep it and give this run another --out, or replace it with --overwrite"
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
            + command("python", "-m", "ncf_lib", "train", "--resume", self.checkpoint)
        )
