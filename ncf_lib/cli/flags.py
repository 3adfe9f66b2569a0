"""The command line's flags: one per field of the settings' dataclasses; the checks of
flags that go together and of output files, before the work."""

from __future__ import annotations

import argparse
import inspect
import os
import re
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from ncf_lib.checkpoints import Checkpoint
from ncf_lib.dataset import MAX_SEED
from ncf_lib.download import DATASETS, default_data_dir
from ncf_lib.errors import ConfigError
from ncf_lib.files import check_writable
from ncf_lib.models import ModelConfig, model_name
from ncf_lib.ratings import find_ratings_file
from ncf_lib.train import MAX_EPOCHS, TrainConfig

#: ``TrainConfig`` fields set through the command line's own flags (--out, --log-dir,
#: --no-progress) rather than a flag of their own.
OWN_FIELDS = ("log_dir", "checkpoint", "progress")
#: Settings a resumed run may change: ``epochs`` extends it; the device is the machine's.
MAY_CHANGE = ("epochs", "device")


class UsageError(ConfigError):
    """A bad combination of arguments."""


def flag(name: str) -> str:
    """``batch_size -> --batch-size``."""
    return "--" + name.replace("_", "-")


def add(parser, name: str, kind=str, default=None, text: str = "", **extra) -> None:
    """One argument: ``kind`` is a type, ``bool`` (a switch), ``[type]`` (one or more) or a
    tuple of choices."""
    if kind is bool:
        extra["action"] = "store_true"
    elif isinstance(kind, list):
        extra.update(type=kind[0], nargs="+")
    elif isinstance(kind, tuple):
        extra["choices"] = kind
    else:
        extra["type"] = kind
    parser.add_argument(name, default=default, help=text, **extra)


def field_help(cls: type) -> dict[str, str]:
    """``{field: text}`` from the ``Attributes:`` section of a dataclass's docstring."""
    helps: dict[str, str] = {}
    name = None
    for line in inspect.getdoc(cls).split("Attributes:")[1].splitlines():
        if match := re.match(r"    (\w+): (.*)", line):
            name = match[1]
            helps[name] = match[2]
        elif name and line.startswith("        "):
            helps[name] += " " + line.strip()
    return {k: re.sub(r":\w+:`~?([^`]+)`", r"\1", v).replace("``", "") for k, v in helps.items()}


def add_config_flags(
    parser: argparse.ArgumentParser, cls: type, skip=(), choices: dict | None = None
) -> None:
    """A flag per field of the dataclass ``cls`` (``--batch-size`` for ``batch_size``), with
    its type, choices (``choices[field]``, else the field's ``choices`` metadata) and
    docstring help; every flag defaults to ``None`` (not given), so that the config's own
    default, or a resumed run's value, applies."""
    helps = field_help(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()
        text = helps[f.name].rstrip(".").replace("%", "%%")
        text += "" if "default" in text else f" (default {shown(default)})"
        if f.type == "bool":
            parser.add_argument(flag(f.name), action="store_true", default=None, help=text)
            continue
        kind = {"int": int, "int | None": int, "float": float, "str": str}.get(f.type, int)
        parser.add_argument(
            flag(f.name),
            type=kind,
            nargs="+" if f.type.startswith("tuple") else None,
            choices=(choices or {}).get(f.name, f.metadata.get("choices")),
            default=None,
            help=text,
        )


def _given(args: argparse.Namespace, cls: type) -> dict:
    """The fields of ``cls`` given as flags (not :data:`OWN_FIELDS`)."""
    names = [f.name for f in fields(cls) if f.name not in OWN_FIELDS]
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def shown(value) -> str:
    """A value as it is written on the command line (a list: space-separated)."""
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def resumed_settings(path: str, resumed: Checkpoint, given: dict):
    """``(TrainConfig, ModelConfig, model name, num_ng_test)`` of the run saved in ``path``.

    ``given``: settings asked for now (fields of both configs, ``model``, ``num_ng_test``;
    ``None``: not given). One that differs from the saved value is an error naming both,
    except :data:`MAY_CHANGE`.
    """
    names = {f.name for f in fields(TrainConfig)}
    saved = TrainConfig(**{k: v for k, v in resumed.train_config.items() if k in names})
    before = {
        **asdict(saved),
        **asdict(resumed.model.config),
        "model": model_name(resumed.model),
        "num_ng_test": resumed.data["num_ng_test"],
    }
    for key, value in given.items():
        same = value is None or np.array_equal(np.asarray(value), np.asarray(before[key]))
        if not same and key not in MAY_CHANGE:
            raise ConfigError(
                f"--{key.replace('_', '-')} {shown(value)} conflicts with the resumed run "
                f"({path}), trained with {key} {shown(before[key])}; drop the flag, or train "
                "a new run"
            )
    config = replace(saved, **{k: given[k] for k in MAY_CHANGE if given.get(k) is not None})
    return config, resumed.model.config, before["model"], before["num_ng_test"]


def run_settings(args: argparse.Namespace, resumed: Checkpoint | None):
    """``(TrainConfig, ModelConfig, model name, num_ng_test)``: the flags given over the
    defaults, or with ``--resume`` the saved run's (checked against the flags)."""
    train, model = _given(args, TrainConfig), _given(args, ModelConfig)
    if resumed is not None:
        given = {**train, **model, "model": args.model, "num_ng_test": args.num_ng_test}
        return resumed_settings(args.resume, resumed, given)
    return (
        TrainConfig(**train),
        ModelConfig(**model),
        args.model or "neumf",
        99 if args.num_ng_test is None else args.num_ng_test,
    )


#: Flags every command checks the range of before any work: ``(lowest, highest, as said)``.
RANGES = {
    "seed": (0, MAX_SEED, "an integer from 0 to 2**32 - 1"),
    "seeds": (0, MAX_SEED, "integers from 0 to 2**32 - 1"),
    "epochs": (1, MAX_EPOCHS, f"an integer from 1 to {MAX_EPOCHS:,}"),
    "study_epochs": (1, MAX_EPOCHS, f"an integer from 1 to {MAX_EPOCHS:,}"),
    "port": (1, 65_535, "a port from 1 to 65535"),
}


def check_ranges(args: argparse.Namespace) -> None:
    """Refuse a seed, an epoch count or a port out of its range, naming the flag (one
    line)."""
    for name, (low, high, expected) in RANGES.items():
        value = getattr(args, name, None)
        values = value if isinstance(value, list) else [] if value is None else [value]
        if any(not low <= v <= high for v in values):
            raise UsageError(f"{flag(name)} must be {expected}, got {shown(value)}")


def check_train_flags(args: argparse.Namespace) -> None:
    """Refuse ``train`` flags that do not go together, before anything is read."""
    if args.pretrain and args.model not in (None, "neumf"):
        raise UsageError("--pretrain needs --model neumf")
    if (args.gmf or args.mlp) and not args.pretrain:
        raise UsageError("--gmf/--mlp are the pre-trained parts of --pretrain")
    if args.resume and args.pretrain:
        raise UsageError("--resume continues one model's run; it cannot be used with --pretrain")
    if not 0.0 <= args.alpha <= 1.0:
        raise UsageError(f"--alpha weighs GMF against MLP and must be in [0, 1], got {args.alpha}")
    if not (np.isfinite(args.finetune_lr) and args.finetune_lr > 0):
        raise UsageError(f"--finetune-lr must be a finite number above 0, got {args.finetune_lr}")


@dataclass(frozen=True)
class Inputs:
    """What a command reads, which its outputs may never replace.

    Attributes:
        files: files it reads (the checkpoint, the ratings file).
        folders: folders whose files it may read (a dataset's folder: ratings, movies, genres).
        caches: folders it may read anything in, at any depth (the download cache).
    """

    files: tuple[Path, ...] = ()
    folders: tuple[Path, ...] = ()
    caches: tuple[Path, ...] = ()


def inputs_of(dataset: str, data_dir: str | None, *files: str) -> Inputs:
    """The :class:`Inputs` of a command reading ``dataset`` (a name or path) and ``files``."""
    if dataset in DATASETS:
        cache = Path(data_dir) if data_dir is not None else default_data_dir()
        return Inputs(tuple(map(Path, files)), caches=(cache,))
    if Path(dataset).exists():
        ratings = find_ratings_file(dataset)
        return Inputs((*map(Path, files), ratings), folders=(ratings.parent,))
    return Inputs(tuple(map(Path, files)))


def _same(a: Path, b: Path) -> bool:
    """One file or folder (symlinks, ``..``, a case-insensitive file system)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(
    flag: str, path: Path, inputs: Inputs, *, force: bool, own: Callable[[Path], bool]
) -> None:
    """Refuse, before any work, an output ``path`` that is one of the ``inputs``' files or in
    one of their folders, or an existing file that is not a previous output of this command
    (``own``) replaced with ``--force``."""
    parent = path.resolve().parent
    for folder in inputs.folders:
        if _same(parent, folder):
            raise UsageError(
                f"{flag} {path} is in the dataset's folder {folder}; write it elsewhere"
            )
    for cache in inputs.caches:
        if any(_same(p, cache) for p in (parent, *parent.parents)):
            raise UsageError(f"{flag} {path} is in the download cache {cache}; write it elsewhere")
    if any(_same(path, f) for f in inputs.files):
        raise UsageError(f"{flag} {path} is an input of this command; give another file name")
    if path.exists() and not (force and own(path)):
        raise UsageError(
            f"{flag} {path} already exists"
            + (" and is not an output of this command" if force else "")
            + "; give another name"
            + ("" if force else " (or --force to replace a previous output of this command)")
        )


def output_file(
    flag: str, text: str, inputs: Inputs, *, force: bool, own: Callable[[Path], bool]
) -> Path:
    """A file a command may write (:func:`check_output`): not a folder, in a folder it can
    write to."""
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise UsageError(f"{flag} {text} is a folder; give a file name, e.g. {path / 'out.csv'}")
    check_output(flag, path, inputs, force=force, own=own)
    check_writable(path.parent, flag)
    return path
