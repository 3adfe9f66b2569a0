"""Command line: ``python -m ncf_lib {info,train,evaluate,recommend,similar,export,reproduce}``.

Parse the arguments, call the package, print. The ``train`` command's settings are the fields
of :class:`~ncf_lib.train.TrainConfig` and :class:`~ncf_lib.models.ModelConfig`: their flags,
types, defaults and help are generated from those classes. Errors a user can fix
(:class:`ncf_lib.errors.UserError`: a missing file, a bad format, a bad value, an unknown
user, a failed download) are printed as one line on stderr with exit code 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import signal
import sys
import tempfile
import time
from contextlib import ExitStack, nullcontext, redirect_stdout
from dataclasses import MISSING, asdict, fields, replace
from pathlib import Path

import numpy as np

from ncf_lib import scale
from ncf_lib.checkpoints import check_same_data, load_checkpoint, writing
from ncf_lib.dataset import build_dataset
from ncf_lib.errors import CheckpointError, ConfigError, Interrupted, UserError
from ncf_lib.files import atomic_write, check_writable, current_umask
from ncf_lib.metrics import evaluate, full_ranking_metrics, per_user_ranks
from ncf_lib.models import MODELS, ModelConfig, build_model, model_name
from ncf_lib.pretraining import FINETUNE, pretrain_neumf
from ncf_lib.ratings import find_ratings_file, load_ratings
from ncf_lib.scale.candidates import large_catalogue_candidates
from ncf_lib.scale.distributed import from_environment
from ncf_lib.study.baselines import PopularityScorer, RandomScorer
from ncf_lib.study.runner import reproduce
from ncf_lib.train import TrainConfig, fit, resolve_device, seed_everything
from ncf_lib.use.export import export_embeddings
from ncf_lib.use.foldin import FoldInConfig, fold_in
from ncf_lib.use.recommend import recommend, recommendation_table
from ncf_lib.use.similar import similar_items
from ncf_lib.use.titles import match_title

DATASET_HELP = (
    "ml-1m (default), ml-100k, ml-20m, ml-25m, ml-latest-small (downloaded once into "
    "--data-dir), synthetic (generated, MovieLens-1M-shaped), synthetic:USERSxITEMSxN, or a "
    "path to a ratings file or an extracted MovieLens folder"
)
#: ``TrainConfig`` fields set through the command line's own flags (--out, --log-dir,
#: --no-progress) rather than a flag of their own.
OWN_FIELDS = ("log_dir", "checkpoint", "progress")
#: The candidate sampler of every dataset the command line builds: the default one, and for
#: catalogues above 10,000 items one whose time grows with the candidates drawn.
DRAW = large_catalogue_candidates
#: Settings a resumed run may change: ``--epochs`` extends it; the device is the machine's.
MAY_CHANGE = ("epochs", "device")


TRAIN_HELP = (
    "train GMF, MLP, NeuMF (--pretrain: with pre-training) or MF",
    "Train a model with leave-one-out evaluation (HR@K, NDCG@K over 1 held-out + 99 sampled "
    "items). Model selection: by default each user's second-latest interaction is a "
    "validation item; the epoch with the best validation HR is kept and its TEST metrics are "
    "reported (per-epoch test metrics are printed to show the curve). --select-on test picks "
    "the epoch on the test items, as the paper's code and popular ports do: optimistic, for "
    "comparison only. --resume continues an interrupted run with its settings (--epochs may "
    "extend it; another value of a setting is an error) and reaches the numbers of an "
    "uninterrupted one.",
)
REPRODUCE_HELP = (
    "the paper's results table and studies, with MF and ItemPop",
    "Train every model of the paper's table (ItemPop, MF, GMF, MLP, NeuMF, NeuMF with "
    "pre-training) over several seeds, plus the studies (factors, negatives, depth). Resumes "
    "from OUT/results.csv; writes OUT/summary.md and plots.",
)


class UsageError(ConfigError):
    """A bad combination of arguments."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _shown(value) -> str:
    """A value as it is written on the command line (a list: space-separated)."""
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _slug(text: str) -> str:
    """A file-name part for a dataset: its name, or for a file its folder and name (two
    ``ratings.csv`` in two folders get two names)."""
    path = Path(text)
    name = f"{path.parent.name}-{path.name}" if path.is_file() and path.parent.name else path.name
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name or text).strip("_") or "data"


def _unfinished(path: Path) -> str | None:
    """How far the unfinished run saved in ``path`` got (``None``: no such run there)."""
    if not path.is_file():
        return None
    ckpt = load_checkpoint(path)
    state, epochs = ckpt.training, ckpt.train_config["epochs"]
    if state is None or state["stopped"] or state["next_epoch"] > epochs:
        return None
    return f"after epoch {state['next_epoch'] - 1} of {epochs}"


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


def add_config_flags(parser: argparse.ArgumentParser, cls: type, skip=()) -> None:
    """A flag per field of the dataclass ``cls`` (``--batch-size`` for ``batch_size``), with
    its type, ``choices`` metadata and docstring help; every flag defaults to ``None``
    (not given), so that the config's own default, or a resumed run's value, applies."""
    helps = field_help(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()
        text = helps[f.name].rstrip(".").replace("%", "%%")
        text += "" if "default" in text else f" (default {_shown(default)})"
        if f.type == "bool":
            parser.add_argument(_flag(f.name), action="store_true", default=None, help=text)
            continue
        kind = {"int": int, "int | None": int, "float": float, "str": str}.get(f.type, int)
        parser.add_argument(
            _flag(f.name),
            type=kind,
            nargs="+" if f.type.startswith("tuple") else None,
            choices=f.metadata.get("choices"),
            default=None,
            help=text,
        )


def _given(args: argparse.Namespace, cls: type) -> dict:
    """The fields of ``cls`` given as flags (not :data:`OWN_FIELDS`)."""
    names = [f.name for f in fields(cls) if f.name not in OWN_FIELDS]
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _settings(args: argparse.Namespace, resumed):
    """``(TrainConfig, ModelConfig, model name, num_ng_test)`` of this run: the flags given
    over the defaults, or with ``--resume`` the saved run's, where a flag that differs from
    the saved value is an error naming both (except :data:`MAY_CHANGE`)."""
    train, model = _given(args, TrainConfig), _given(args, ModelConfig)
    if resumed is None:
        return (
            TrainConfig(**train),
            ModelConfig(**model),
            args.model or "neumf",
            99 if args.num_ng_test is None else args.num_ng_test,
        )
    names = {f.name for f in fields(TrainConfig)}
    saved = TrainConfig(**{k: v for k, v in resumed.train_config.items() if k in names})
    saved_model = resumed.model.config
    before = {
        **asdict(saved),
        **asdict(saved_model),
        "model": model_name(resumed.model),
        "num_ng_test": resumed.data["num_ng_test"],
    }
    now = {**train, **model, "model": args.model, "num_ng_test": args.num_ng_test}
    for key, value in now.items():
        same = value is None or np.array_equal(np.asarray(value), np.asarray(before[key]))
        if not same and key not in MAY_CHANGE:
            raise UsageError(
                f"{_flag(key)} {_shown(value)} conflicts with the resumed run ({args.resume}), "
                f"trained with {key} {_shown(before[key])}; drop the flag, or train a new run"
            )
    config = replace(saved, **{k: train[k] for k in MAY_CHANGE if k in train})
    return config, saved_model, before["model"], before["num_ng_test"]


def cmd_info(args: argparse.Namespace) -> None:
    """Load, re-index, split and draw candidates; print a summary with stage timings."""
    clock = time.perf_counter()
    ratings = load_ratings(args.dataset, args.data_dir)
    timings = {"load": time.perf_counter() - clock}
    data = build_dataset(
        ratings, num_ng_test=args.num_ng_test, seed=args.seed, timings=timings, draw=DRAW
    )
    rows = {
        "dataset": data.name,
        "users": data.n_users,
        "items": data.n_items,
        "interactions": len(ratings.ratings),
        "train": data.n_train,
        "validation users": 0 if data.validation is None else data.validation.users.size,
        "test users": data.test.users.size,
        "test candidates per user": data.test.candidates.shape[1],
        "density": f"{data.density:.4%}",
        "titles": "yes" if data.titles is not None else "no",
        **{
            f"{side} ids": "integers" if ids.dtype.kind in "iu" else "names"
            for side, ids in (("user", data.user_ids), ("item", data.item_ids))
        },  # fmt: skip
        **{f"seconds {stage}": f"{sec:.3f}" for stage, sec in timings.items()},
        "seconds total": f"{sum(timings.values()):.3f}",
    }
    for key, value in rows.items():
        print(f"{key}: {value:,}" if isinstance(value, int) else f"{key}: {value}")


def _print_epoch(row: dict, k: int) -> None:
    val = (
        f"   val HR@{k} {row['val_hr']:.3f} NDCG@{k} {row['val_ndcg']:.3f}"
        if "val_hr" in row
        else ""
    )
    loss = "(before training)" if row["epoch"] == 0 else f"loss {row['loss']:.4f}"
    print(
        f"epoch {row['epoch']:03d}  {loss}  test HR@{k} {row['test_hr']:.3f} "
        f"NDCG@{k} {row['test_ndcg']:.3f}{val}   train {row['train_seconds']:.1f} s  "
        f"eval {row['eval_seconds']:.2f} s",
        flush=True,
    )


class _Stages:
    """The stages of one ``train`` command: each one's checkpoint (locked while this run
    writes it) and TensorBoard folder, and how far the current one got."""

    def __init__(self, args: argparse.Namespace, data_name: str, locks: ExitStack) -> None:
        self.args, self.data_name, self.locks = args, data_name, locks
        self.main = (ranks := from_environment()) is None or ranks.main  # torchrun: rank 0
        self.checkpoint: Path | None = None
        self.stage, self.last = "", None

    def configure(self, name: str, config: TrainConfig) -> TrainConfig:
        """``(stage, config) -> config`` with the stage's files, announced on stdout."""
        tag = f"{_slug(self.data_name)}-{name}"
        checkpoint = Path(self.args.resume or Path(self.args.out) / f"{tag}.pt")
        log_dir = None
        if self.main:
            self.locks.enter_context(writing(checkpoint))
            if not self.args.no_log:  # a folder of its own, even for two runs in a second
                stamp = time.strftime("%Y%m%d-%H%M%S")
                log_dir = tempfile.mkdtemp(prefix=f"{tag}-{stamp}-", dir=self.args.log_dir)
                os.chmod(log_dir, 0o777 & ~current_umask())
        self.checkpoint, self.stage, self.last = checkpoint, name, None
        print(
            f"== {name}: {config.epochs} epochs, {config.optimizer} lr {config.lr}, "
            f"batch {config.batch_size}, {config.num_ng} negatives per positive, "
            f"selecting on {config.select_on} ==",
            flush=True,
        )
        return replace(config, checkpoint=str(checkpoint), log_dir=log_dir)

    def interrupted(self) -> str:
        """One line: what an interruption kept, and how to go on."""
        if self.checkpoint is None:
            return "interrupted before training started; nothing was written"
        if self.last is None and not self.args.resume:
            return (
                f"interrupted in the first epoch of {self.stage}; nothing was saved "
                f"({self.checkpoint} was not written by this run)"
            )
        done = (
            "before a new epoch finished"
            if self.last is None
            else f"after epoch {self.last['epoch']}"
        )
        return (
            f"interrupted {done} of {self.stage}: {self.checkpoint} "
            "holds the best epoch so far and can be resumed with "
            f"python -m ncf_lib train --resume {self.checkpoint}"
        )


def cmd_train(args: argparse.Namespace) -> int:
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
    resumed = load_checkpoint(args.resume) if args.resume else None
    if resumed is not None and resumed.training is None:
        raise CheckpointError(f"--resume {args.resume}: this checkpoint has no training state")
    config, model_config, name, num_ng_test = _settings(args, resumed)
    config = replace(config, progress=not args.no_progress)
    sampler = args.sampler or (resumed.training["sampler"]["kind"] if resumed else "auto")
    engine = scale.engine(config, hand_gradients=args.engine == "hand", sampler=sampler)
    parts = {n: load_checkpoint(p) for n, p in (("gmf", args.gmf), ("mlp", args.mlp)) if p}
    resolve_device(config.device)
    check_writable(Path(args.resume).parent if args.resume else args.out, "--out")
    if not args.no_log:
        check_writable(args.log_dir, "--log-dir")
    dataset = args.dataset or (resumed.dataset if resumed else "ml-1m")
    stages = [n for n in ("gmf", "mlp") if n not in parts] + ["neumf-pretrained"]
    for stage in [] if resumed else stages if args.pretrain else [name]:
        path = Path(args.out) / f"{_slug(dataset)}-{stage}.pt"
        if not args.overwrite and (done := _unfinished(path)):
            raise UsageError(
                f"{path} holds an unfinished run ({done}): continue it with --resume {path}, "
                "or start again with --overwrite"
            )
    clock = time.perf_counter()
    data = build_dataset(
        load_ratings(dataset, args.data_dir),
        num_ng_test=num_ng_test,
        seed=config.seed,
        validation=config.select_on == "validation",
        draw=DRAW,
    )
    for part, ckpt in [*parts.items(), *([("resume", resumed)] if resumed else [])]:
        check_same_data(getattr(args, part), ckpt.fingerprint, data)
        if part != "resume" and model_name(ckpt.model) != part:
            raise CheckpointError(
                f"--{part} {getattr(args, part)} holds a "
                f"{type(ckpt.model).__name__}, not a {part.upper()}"
            )
    print(
        f"data: {data.name}: {data.n_users:,} users, {data.n_items:,} items, "
        f"{data.n_train:,} training positives, {data.test.users.size:,} test users x "
        f"{data.test.candidates.shape[1]} candidates ({time.perf_counter() - clock:.1f} s)"
    )
    pop = evaluate(PopularityScorer.fit(data), data.test, config.top_k)
    k = config.top_k
    print(
        f"reference: popularity test HR@{k} {pop['hr']:.3f} NDCG@{k} {pop['ndcg']:.3f}", flush=True
    )
    with ExitStack() as locks:
        stages = _Stages(args, data.name, locks)

        def on_epoch(row: dict) -> None:
            stages.last = row
            _print_epoch(row, k)

        try:
            if args.pretrain:
                for part in parts:
                    print(f"== {part}: loaded from {getattr(args, part)} ==")
                finetune = {"lr": args.finetune_lr, "optimizer": args.finetune_optimizer}
                result = pretrain_neumf(
                    data,
                    config,
                    model_config,
                    alpha=args.alpha,
                    gmf=parts["gmf"].model if "gmf" in parts else None,
                    mlp=parts["mlp"].model if "mlp" in parts else None,
                    finetune=finetune,
                    stage_config=stages.configure,
                    on_epoch=on_epoch,
                    engine=engine,
                ).neumf
            else:
                stage = stages.configure(name, config)
                if resumed is not None:
                    print(f"resuming after epoch {resumed.training['epoch']} from {args.resume}")
                    for row in resumed.training["history"]:
                        _print_epoch(row, k)
                seed_everything(stage.seed)
                model = build_model(name, data.n_users, data.n_items, model_config)
                result = fit(model, data, stage, on_epoch=on_epoch, resume=resumed, engine=engine)
        except KeyboardInterrupt:
            print(stages.interrupted(), file=sys.stderr, flush=True)
            return 130
    best = result.best
    print(f"done in {time.perf_counter() - clock:.1f} s; best epoch chosen on {config.select_on}")
    print(f"checkpoint: {result.checkpoint}")
    if not args.no_log:
        print(
            f"TensorBoard logs: {args.log_dir}/  (make tensorboard, or "
            f"tensorboard --logdir {args.log_dir})"
        )
    if "val_hr" in best:
        print(
            f"validation at that epoch: HR@{k} = {best['val_hr']:.3f}, "
            f"NDCG@{k} = {best['val_ndcg']:.3f}"
        )
    print(
        f"Best epoch {result.best_epoch:03d}: HR = {best['test_hr']:.3f}, "
        f"NDCG = {best['test_ndcg']:.3f}"
    )
    return 0


def _checkpoint_and_data(args: argparse.Namespace, ckpt=None):
    """The checkpoint (loaded here unless given) and the data it was trained on, verified."""
    ckpt = ckpt or load_checkpoint(args.checkpoint)
    ratings = load_ratings(args.dataset or ckpt.dataset, args.data_dir)
    data = build_dataset(ratings, **ckpt.data, draw=DRAW)
    check_same_data(args.checkpoint, ckpt.fingerprint, data)
    return ckpt, data


def _output_file(flag: str, text: str, inputs: list[str]) -> Path:
    """A file this command may write: not a folder, not one of its inputs, in a folder it
    can write to."""
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise UsageError(f"{flag} {text} is a folder; give a file name, e.g. {path / 'out.csv'}")
    if any(Path(i).exists() and path.resolve() == Path(i).resolve() for i in inputs):
        raise UsageError(f"{flag} {text} is an input of this command; give another file name")
    check_writable(path.parent, flag)
    return path


def cmd_evaluate(args: argparse.Namespace) -> None:
    ckpt = load_checkpoint(args.checkpoint)
    if args.per_user:  # checked before the data is built and the metrics computed
        dataset = args.dataset or ckpt.dataset
        read = [str(find_ratings_file(dataset))] if Path(dataset).exists() else []
        _output_file("--per-user", args.per_user, [args.checkpoint, *read])
    ckpt, data = _checkpoint_and_data(args, ckpt)
    k = args.top_k
    print(
        f"checkpoint: {args.checkpoint} ({type(ckpt.model).__name__}, epoch {ckpt.epoch}, "
        f"data {data.name})"
    )
    print(
        f"{'scorer':<12} {'split':<11} {f'HR@{k}':>8} {f'NDCG@{k}':>8}"
        f" {f'full HR@{k}':>11} {f'full NDCG@{k}':>12}"
    )
    scorers = {
        "model": ckpt.model.score,
        "popularity": PopularityScorer.fit(data),
        "random": RandomScorer(args.seed),
    }
    for name, scorer in scorers.items():
        for split, eval_set in (("validation", data.validation), ("test", data.test)):
            if eval_set is not None:
                sampled = evaluate(scorer, eval_set, k)
                exclude = data.validation if split == "test" else None
                full = full_ranking_metrics(scorer, data, eval_set, k, exclude=exclude)
                print(
                    f"{name:<12} {split:<11} {sampled['hr']:8.3f} {sampled['ndcg']:8.3f}"
                    f" {full['hr']:11.3f} {full['ndcg']:12.3f}"
                )
    if args.per_user:
        with atomic_write(args.per_user) as tmp:
            per_user_ranks(ckpt.model.score, data).to_csv(tmp, index=False)
        print(f"per-user ranks of the model: {args.per_user}")


def _item(data, text: str) -> int:
    """An item by its original id, else by its title."""
    try:
        return data.item_index(text)
    except UserError:
        return match_title(text, data.titles, data.item_ids)


def cmd_recommend(args: argparse.Namespace) -> None:
    if args.k < 1:
        raise UsageError(f"-k must be at least 1, got {args.k}")
    if (args.user is None) == (not (args.like or args.like_ids)):
        raise UsageError("give either --user, or the movies a new user likes (--like/--like-ids)")
    ckpt, data = _checkpoint_and_data(args)
    if args.user is not None:
        user = data.user_index(args.user, what="--user")
        history, model = data.user_history(user), ckpt.model
        name = f"user {data.user_ids[user]}"
        who = f"{name} ({history.size} movies rated, excluded)"
    else:
        history = np.unique(
            [match_title(t, data.titles, data.item_ids) for t in args.like or []]
            + [data.item_index(i, what="--like-ids") for i in args.like_ids or []]
        )
        model, user = fold_in(ckpt.model, [history], FoldInConfig(seed=args.seed)), 0
        liked = data.titles[history] if data.titles is not None else data.item_ids[history]
        name = "the folded-in user"
        who = f"a new user who likes {'; '.join(map(str, liked))} (folded in, excluded)"
    items, probs = recommend(model, user, args.k, exclude=history, name=name)
    print(f"Top {len(items)} for {who}:")
    print(recommendation_table(items, probs, data.item_ids, data.titles).to_string(index=False))


def cmd_similar(args: argparse.Namespace) -> None:
    if args.k < 1:
        raise UsageError(f"-k must be at least 1, got {args.k}")
    ckpt, data = _checkpoint_and_data(args)
    item = _item(data, args.item)
    items, cosines = similar_items(ckpt.model, item, args.k, ids=data.item_ids)
    name = data.titles[item] if data.titles is not None else data.item_ids[item]
    print(
        f"Closest to {name} (id {data.item_ids[item]}) in {type(ckpt.model).__name__}'s item space:"
    )
    table = recommendation_table(items, cosines, data.item_ids, data.titles)
    print(table.rename(columns={"probability": "cosine"}).to_string(index=False))


def cmd_export(args: argparse.Namespace) -> None:
    check_writable(args.out, "export folder")
    ckpt, data = _checkpoint_and_data(args)
    folder = export_embeddings(ckpt.model, data.user_ids, data.item_ids, data.titles, args.out)
    print(f"wrote {folder}/embeddings.npz, users.csv and items.csv")


def cmd_reproduce(args: argparse.Namespace) -> None:
    path = reproduce(
        load_ratings(args.dataset, args.data_dir),
        args.out or Path("results") / _slug(args.dataset),
        seeds=args.seeds, epochs=args.epochs, study_epochs=args.study_epochs,
        factors=args.factors, only_main=args.only_main, jobs=args.jobs,
        say=lambda line: print(line, flush=True),
    )  # fmt: skip
    print(f"report: {path}")


def _add(parser, flag: str, kind=str, default=None, text: str = "", **extra) -> None:
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
    parser.add_argument(flag, default=default, help=text, **extra)


def _command(commands, name: str, text: str, run, checkpoint: bool = False, **kwargs):
    """A sub-command with the data arguments (and a checkpoint to read)."""
    parser = commands.add_parser(name, help=text, **kwargs)
    if checkpoint:
        parser.add_argument("checkpoint")
    _add(
        parser,
        "--dataset",
        str,
        None if checkpoint else "ml-1m",
        "override the dataset recorded in the checkpoint" if checkpoint else DATASET_HELP,
    )
    _add(parser, "--data-dir", str, None, "download cache (default: $NCF_DATA_DIR or data/)")
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ncf_lib", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    info = _command(commands, "info", "summarise a dataset and its leave-one-out split", cmd_info)
    _add(info, "--num-ng-test", int, 99, "sampled negatives per held-out item (default 99)")
    _add(info, "--seed", int, 42, "seed of the candidates")

    train = _command(commands, "train", TRAIN_HELP[0], cmd_train, description=TRAIN_HELP[1])
    train.set_defaults(dataset=None)  # ml-1m, or with --resume the checkpoint's
    _add(train, "--model", tuple(MODELS), None, "the model (default neumf)")
    add_config_flags(train, TrainConfig, skip=OWN_FIELDS)
    add_config_flags(train, ModelConfig)
    _add(train, "--num-ng-test", int, None, "sampled negatives per held-out item (default 99)")
    _add(train, "--pretrain", bool, False, "with --model neumf: pre-train GMF and MLP first")
    _add(train, "--gmf", str, None, "--pretrain with this trained GMF", metavar="CKPT")
    _add(train, "--mlp", str, None, "--pretrain with this trained MLP", metavar="CKPT")
    _add(train, "--alpha", float, 0.5, "weight of GMF in the pre-trained NeuMF (paper: 0.5)")
    _add(train, "--finetune-optimizer", ("adam", "sgd"), FINETUNE["optimizer"], "(paper: sgd)")
    _add(train, "--finetune-lr", float, FINETUNE["lr"], "learning rate of the pre-trained NeuMF")
    _add(train, "--resume", str, None, "continue the run that wrote CKPT", metavar="CKPT")
    _add(train, "--out", str, "checkpoints", "checkpoint folder")
    _add(train, "--overwrite", bool, False, "replace an unfinished run's checkpoint")
    _add(train, "--log-dir", str, "runs", "TensorBoard folder")
    _add(train, "--no-log", bool, False, "no TensorBoard logs")
    _add(train, "--no-progress", bool, False, "no progress bars")
    _add(train, "--engine", ("autograd", "hand"), "autograd", "hand: ncf_lib.scale.hand_gradients")
    _add(train, "--sampler", scale.SAMPLERS, None, "negatives (default auto: torch on CUDA)")

    ev = _command(commands, "evaluate", "sampled and full-ranking metrics", cmd_evaluate, True)
    _add(ev, "--top-k", int, 10, "K of HR@K and NDCG@K")
    _add(ev, "--seed", int, 0, "seed of the random reference scorer")
    _add(ev, "--per-user", str, None, "also write each held-out item's rank", metavar="CSV")
    rec = _command(commands, "recommend", "top-k movies for a user", cmd_recommend, True)
    _add(rec, "--user", str, None, "original user id (as in the ratings file)")
    _add(rec, "--like", str, None, "a movie a new user likes (repeat it)", action="append")
    _add(rec, "--like-ids", [str], None, "movies a new user likes, by original id")
    _add(rec, "-k", int, 10, "how many movies")
    _add(rec, "--seed", int, 0, "seed of the fold-in")
    sim = _command(commands, "similar", "the movies closest to one", cmd_similar, True)
    _add(sim, "--item", str, None, "original item id or title", required=True)
    _add(sim, "-k", int, 10, "how many movies")
    exp = _command(commands, "export", "embeddings with ids and titles", cmd_export, True)
    exp.add_argument("out", help="folder for embeddings.npz, users.csv, items.csv")

    rep = _command(
        commands, "reproduce", REPRODUCE_HELP[0], cmd_reproduce, description=REPRODUCE_HELP[1]
    )
    _add(rep, "--seeds", [int], [0, 1, 2], "seeds of every run")
    _add(rep, "--epochs", int, 20, "epochs of the main runs")
    _add(rep, "--study-epochs", int, 10, "epochs of the negatives and depth studies")
    _add(rep, "--factors", [int], [8, 16, 32, 64], "predictive factors of the factors study")
    _add(rep, "--only-main", bool, False, "skip the studies")
    _add(rep, "--jobs", int, 1, "runs trained at once, one thread each (the number of cores)")
    _add(rep, "--out", str, None, "results folder (default results/DATASET)")
    return parser


def _terminate(signum, frame) -> None:
    raise Interrupted(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)  # end like Ctrl-C: say what was kept
    ranks = from_environment()  # under torchrun, only rank 0 prints
    quiet = ranks is not None and not ranks.main
    try:
        with open(os.devnull, "w") if quiet else nullcontext(sys.stdout) as out:
            with redirect_stdout(out):
                return args.run(args) or 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
