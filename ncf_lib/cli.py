"""Command line: ``python -m ncf_lib {info,train,evaluate,recommend,similar,export,reproduce}``.

Thin by design: parse arguments, call the package, print. Errors a user can fix
(:class:`ncf_lib.errors.UserError`: a missing file, a bad format, a bad value, an unknown
user, a failed download) are printed as one line on stderr with exit code 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import tempfile
import time
from contextlib import ExitStack, nullcontext, redirect_stdout
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ncf_lib import distributed
from ncf_lib.checkpoints import check_same_data, load_checkpoint
from ncf_lib.dataset import NCFData, build_dataset
from ncf_lib.errors import CheckpointError, ConfigError, Interrupted, UnknownIdError, UserError
from ncf_lib.files import atomic_write, check_writable, current_umask, exclusive_lock
from ncf_lib.metrics import (
    evaluate,
    full_ranking_metrics,
    full_ranks,
    rank_of_first,
    score_candidates,
)
from ncf_lib.models import MODELS, ModelConfig, build_model, model_name
from ncf_lib.optimizers import OPTIMIZERS
from ncf_lib.pretraining import FINETUNE, pretrain_neumf
from ncf_lib.ratings import dataset_label, load_ratings
from ncf_lib.recommend import recommend, recommendation_table
from ncf_lib.study.baselines import PopularityScorer, RandomScorer
from ncf_lib.titles import match_title
from ncf_lib.train import TrainConfig, fit, resolve_device, seed_everything, train_model
from ncf_lib.use.export import export_embeddings
from ncf_lib.use.foldin import FoldInConfig, fold_in
from ncf_lib.use.similar import similar_items

DATASET_HELP = (
    "ml-1m (default), ml-100k, ml-20m, ml-25m, ml-latest-small (downloaded once into "
    "--data-dir), synthetic (generated, MovieLens-1M-shaped), synthetic:USERSxITEMSxN, or a "
    "path to a ratings file or an extracted MovieLens folder"
)


class UsageError(ConfigError):
    """A bad combination of arguments."""


# --------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> None:
    """Load, re-index, split and draw candidates; print a summary with stage timings."""
    clock = time.perf_counter()
    ratings = load_ratings(args.dataset, args.data_dir)
    timings = {"load": time.perf_counter() - clock}
    data = build_dataset(ratings, num_ng_test=args.num_ng_test, seed=args.seed, timings=timings)
    val = data.validation
    rows = {
        "dataset": data.name,
        "users": data.n_users,
        "items": data.n_items,
        "interactions": len(ratings.ratings),
        "train": data.n_train,
        "validation users": 0 if val is None else val.users.size,
        "test users": data.test.users.size,
        "test candidates per user": data.test.candidates.shape[1],
        "density": f"{data.density:.4%}",
        "titles": "yes" if data.titles is not None else "no",
    }
    rows.update({f"seconds {stage}": f"{sec:.3f}" for stage, sec in timings.items()})
    rows["seconds total"] = f"{sum(timings.values()):.3f}"
    for key, value in rows.items():
        print(f"{key}: {value:,}" if isinstance(value, int) else f"{key}: {value}")


# --------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", Path(text).name or text).strip("_") or "data"


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


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        l2=args.l2,
        num_ng=args.num_ng,
        top_k=args.top_k,
        seed=args.seed,
        select_on=args.select_on,
        patience=args.patience,
        hand_gradients=args.engine == "hand",
        device=args.device,
        progress=not args.no_progress,
    )


class _Run:
    """The stages of one ``train`` command: their files, locks, and how far each got."""

    def __init__(self, args: argparse.Namespace, data: NCFData, locks: ExitStack) -> None:
        self.args, self.data, self.locks = args, data, locks
        self.checkpoint: Path | None = None
        self.stage = ""
        self.last: dict | None = None  # the stage's last finished epoch

    def configure(self, name: str, config: TrainConfig) -> TrainConfig:
        """``(name, config) -> config`` for one stage: its own checkpoint (locked against a
        second run writing it) and TensorBoard folder, announced on stdout."""
        args = self.args
        tag = f"{_slug(self.data.name)}-{name}"
        checkpoint = Path(args.out) / f"{tag}.pt"
        ranks = distributed.from_environment()
        main = ranks is None or ranks.main  # under torchrun, rank 0 writes and logs
        if main:
            self.lock(checkpoint)
        log_dir = None
        if not args.no_log and main:  # a folder of its own, even for two runs in a second
            stamp = time.strftime("%Y%m%d-%H%M%S")
            log_dir = tempfile.mkdtemp(prefix=f"{tag}-{stamp}-", dir=args.log_dir)
            os.chmod(log_dir, 0o777 & ~current_umask())
        config = replace(config, checkpoint=str(checkpoint), log_dir=log_dir)
        self.checkpoint, self.stage, self.last = checkpoint, name, None
        print(
            f"== {name}: {config.epochs} epochs, {config.optimizer} lr {config.lr}, "
            f"batch {config.batch_size}, {config.num_ng} negatives per positive, "
            f"selecting on {config.select_on} ==",
            flush=True,
        )
        return config

    def lock(self, checkpoint: Path) -> None:
        """Hold ``checkpoint``'s lock until the command ends; stop if another run has it."""
        lock = checkpoint.with_name(f".{checkpoint.name}.lock")
        try:
            self.locks.enter_context(exclusive_lock(lock, wait=False))
        except BlockingIOError:
            raise ConfigError(
                f"{checkpoint} is being written by another training run; wait for it to "
                "finish, or give this run another --out folder"
            ) from None

    def interrupted(self) -> str:
        """One line: what an interruption kept, and how to go on."""
        if self.checkpoint is None:
            return "interrupted before training started; nothing was written"
        if self.last is None:
            return (
                f"interrupted in the first epoch of {self.stage}; nothing was saved "
                f"({self.checkpoint} was not written by this run)"
            )
        return (
            f"interrupted after epoch {self.last['epoch']} of {self.stage}: {self.checkpoint} "
            f"holds the best epoch so far and can be resumed with "
            f"python -m ncf_lib train --resume {self.checkpoint}"
        )


def _check_parts(args: argparse.Namespace, parts: dict, data: NCFData) -> None:
    for name, ckpt in parts.items():
        check_same_data(getattr(args, name), ckpt.fingerprint, data)
        if type(ckpt.model).__name__.lower() != name:
            raise CheckpointError(
                f"--{name} {getattr(args, name)} holds a {type(ckpt.model).__name__}, "
                f"not a {name.upper()}"
            )


def cmd_train(args: argparse.Namespace) -> int:
    if args.pretrain and args.model != "neumf":
        raise UsageError("--pretrain needs --model neumf")
    if (args.gmf or args.mlp) and not args.pretrain:
        raise UsageError("--gmf/--mlp are the pre-trained parts of --pretrain")
    resumed = load_checkpoint(args.resume) if args.resume else None
    if resumed is not None:
        if args.pretrain:
            raise UsageError(
                "--resume continues one model's run; it cannot be used with --pretrain"
            )
        if resumed.training is None:
            raise CheckpointError(f"--resume {args.resume}: this checkpoint has no training state")
        _from_checkpoint(args, resumed)
    args.dataset = args.dataset or "ml-1m"
    args.epochs = args.epochs if args.epochs is not None else TrainConfig().epochs
    parts = {
        name: load_checkpoint(path) for name, path in (("gmf", args.gmf), ("mlp", args.mlp)) if path
    }
    model_config = ModelConfig(args.factor_num, tuple(args.layers), args.dropout)
    config = _train_config(args)
    resolve_device(args.device)
    check_writable(args.out, "--out")
    if not args.no_log:
        check_writable(args.log_dir, "--log-dir")
    clock = time.perf_counter()
    data = build_dataset(
        load_ratings(args.dataset, args.data_dir),
        num_ng_test=args.num_ng_test,
        seed=args.seed,
        validation=args.select_on == "validation",
    )
    _check_parts(args, parts, data)
    if resumed is not None:
        check_same_data(args.resume, resumed.fingerprint, data)
    print(
        f"data: {data.name}: {data.n_users:,} users, {data.n_items:,} items, "
        f"{data.n_train:,} training positives, {data.test.users.size:,} test users x "
        f"{data.test.candidates.shape[1]} candidates ({time.perf_counter() - clock:.1f} s)"
    )
    pop = evaluate(PopularityScorer.fit(data), data.test, args.top_k)
    print(
        f"reference: popularity test HR@{args.top_k} {pop['hr']:.3f} "
        f"NDCG@{args.top_k} {pop['ndcg']:.3f}",
        flush=True,
    )
    with ExitStack() as locks:
        run = _Run(args, data, locks)

        def on_epoch(row: dict) -> None:
            run.last = row
            _print_epoch(row, config.top_k)

        try:
            result = _train(args, data, config, model_config, parts, resumed, run, on_epoch)
        except KeyboardInterrupt:
            print(run.interrupted(), file=sys.stderr, flush=True)
            return 130
    _report(args, result, clock)
    return 0


def _from_checkpoint(args: argparse.Namespace, ckpt) -> None:
    """Take every setting of a resumed run from its checkpoint (``--epochs`` may extend it)."""
    saved = ckpt.train_config
    for key in (
        "batch_size",
        "lr",
        "optimizer",
        "l2",
        "num_ng",
        "top_k",
        "seed",
        "select_on",
        "patience",
    ):
        setattr(args, key, saved[key])
    args.epochs = args.epochs if args.epochs is not None else saved["epochs"]
    args.engine = "hand" if saved["hand_gradients"] else "autograd"
    args.model = model_name(ckpt.model)
    config = ckpt.model.config
    args.factor_num, args.layers, args.dropout = (
        config.factor_num,
        list(config.layers),
        config.dropout,
    )
    args.dataset = args.dataset or ckpt.dataset
    args.num_ng_test = ckpt.data["num_ng_test"]
    args.out = str(Path(args.resume).parent)


def _train(args, data, config, model_config, parts, resumed, run: _Run, on_epoch):
    if args.pretrain:
        for name in parts:
            print(f"== {name}: loaded from {getattr(args, name)} ==")
        return pretrain_neumf(
            data,
            config,
            model_config,
            alpha=args.alpha,
            gmf=parts["gmf"].model if "gmf" in parts else None,
            mlp=parts["mlp"].model if "mlp" in parts else None,
            finetune={"lr": args.finetune_lr, "optimizer": args.finetune_optimizer},
            stage_config=run.configure,
            on_epoch=on_epoch,
        ).neumf
    stage = run.configure(args.model, config)
    if resumed is not None:
        if Path(stage.checkpoint).resolve() != Path(args.resume).resolve():
            stage = replace(stage, checkpoint=str(args.resume))
            run.lock(Path(args.resume))
            run.checkpoint = Path(args.resume)
        print(f"resuming after epoch {resumed.training['epoch']} from {args.resume}")
        for row in resumed.training["history"]:
            _print_epoch(row, config.top_k)
        seed_everything(stage.seed)
        model = build_model(args.model, data.n_users, data.n_items, model_config)
        return fit(model, data, stage, on_epoch=on_epoch, resume=resumed)
    return train_model(args.model, data, stage, model_config, on_epoch=on_epoch)


def _report(args: argparse.Namespace, result, clock: float) -> None:
    k = args.top_k
    best = result.best
    print(f"done in {time.perf_counter() - clock:.1f} s; best epoch chosen on {args.select_on}")
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


# --------------------------------------------------------------------------------------
# evaluate and recommend
# --------------------------------------------------------------------------------------


def _checkpoint_and_data(args: argparse.Namespace):
    ckpt = load_checkpoint(args.checkpoint)
    dataset = args.dataset or ckpt.dataset
    ratings = load_ratings(dataset, args.data_dir)
    data = build_dataset(ratings, **ckpt.data)
    check_same_data(args.checkpoint, ckpt.fingerprint, data)
    return ckpt, ratings, data


def _user_index(data: NCFData, user: str) -> int:
    """The contiguous id of an original user id given on the command line."""
    ids = data.user_ids
    if _original_id(ids, user) is None:
        raise UnknownIdError(f"--user {user!r}: the user ids of {data.name} are integers")
    where = _position(ids, user)
    if where is None:
        raise UnknownIdError(
            f"--user {user} is not in {data.name} (original user ids run from "
            f"{ids[0]} to {ids[-1]})"
        )
    return where


def cmd_evaluate(args: argparse.Namespace) -> None:
    ckpt, _, data = _checkpoint_and_data(args)
    k = args.top_k
    if args.per_user:
        check_writable(Path(args.per_user).parent, "--per-user")
    print(
        f"checkpoint: {args.checkpoint} ({type(ckpt.model).__name__}, epoch {ckpt.epoch}, "
        f"data {data.name})"
    )
    scorers = {
        "model": ckpt.model.score,
        "popularity": PopularityScorer.fit(data),
        "random": RandomScorer(args.seed),
    }
    print(
        f"{'scorer':<12} {'split':<11} {f'HR@{k}':>8} {f'NDCG@{k}':>8}"
        f" {f'full HR@{k}':>11} {f'full NDCG@{k}':>12}"
    )
    for name, scorer in scorers.items():
        for split, eval_set in (("validation", data.validation), ("test", data.test)):
            if eval_set is None:
                continue
            sampled = evaluate(scorer, eval_set, k)
            full = full_ranking_metrics(
                scorer, data, eval_set, k, exclude=data.validation if split == "test" else None
            )
            print(
                f"{name:<12} {split:<11} {sampled['hr']:8.3f} {sampled['ndcg']:8.3f}"
                f" {full['hr']:11.3f} {full['ndcg']:12.3f}"
            )
    if args.per_user:
        path = write_per_user(ckpt.model.score, data, args.per_user)
        print(f"per-user ranks of the model: {path}")


def _original_id(ids: np.ndarray, text: str):
    """``text`` as an id of the kind ``ids`` holds (int or str), or ``None`` if it cannot be."""
    if ids.dtype.kind in "iu":
        try:
            return int(text)
        except ValueError:
            return None
    return text


def _position(ids: np.ndarray, text: str) -> int | None:
    """Where the original id ``text`` is in the sorted ``ids`` (the contiguous id), or None."""
    key = _original_id(ids, text)
    if key is None:
        return None
    where = int(np.searchsorted(ids, key))
    return where if where < ids.size and ids[where] == key else None


def _item_index(data: NCFData, text: str, *, titles: bool = True) -> int:
    """The contiguous id of an item given by its original id or (``titles``) its title."""
    where = _position(data.item_ids, text)
    if where is not None:
        return where
    if titles:
        return match_title(text, data.titles, data.item_ids)
    raise UnknownIdError(f"item id {text} is not in {data.name}")


def cmd_recommend(args: argparse.Namespace) -> None:
    if args.k < 1:
        raise UsageError(f"-k must be at least 1, got {args.k}")
    if (args.user is None) == (not (args.like or args.like_ids)):
        raise UsageError("give either --user, or the movies a new user likes (--like/--like-ids)")
    ckpt, _, data = _checkpoint_and_data(args)
    if args.user is not None:
        user = _user_index(data, args.user)
        history = data.train_items[slice(*np.searchsorted(data.train_users, [user, user + 1]))]
        held = [s.items[s.users == user] for s in (data.validation, data.test) if s is not None]
        history = np.concatenate([history, *held])
        model, who = (
            ckpt.model,
            f"user {data.user_ids[user]} ({history.size} movies rated, excluded)",
        )
    else:
        history = np.unique(
            [match_title(t, data.titles, data.item_ids) for t in args.like or []]
            + [_item_index(data, i, titles=False) for i in args.like_ids or []]
        )
        model = fold_in(ckpt.model, [history], FoldInConfig(seed=args.seed))
        user = 0
        liked = data.titles[history] if data.titles is not None else data.item_ids[history]
        who = f"a new user who likes {'; '.join(map(str, liked))} (folded in, excluded)"
    items, probs = recommend(model, user, args.k, exclude=history)
    print(f"Top {len(items)} for {who}:")
    table = recommendation_table(items, probs, data.item_ids, data.titles)
    print(table.to_string(index=False))


def cmd_similar(args: argparse.Namespace) -> None:
    if args.k < 1:
        raise UsageError(f"-k must be at least 1, got {args.k}")
    ckpt, _, data = _checkpoint_and_data(args)
    item = _item_index(data, args.item)
    items, cosines = similar_items(ckpt.model, item, args.k)
    name = data.titles[item] if data.titles is not None else data.item_ids[item]
    print(
        f"Closest to {name} (id {data.item_ids[item]}) in {type(ckpt.model).__name__}'s item space:"
    )
    table = recommendation_table(items, cosines, data.item_ids, data.titles)
    print(table.rename(columns={"probability": "cosine"}).to_string(index=False))


def cmd_export(args: argparse.Namespace) -> None:
    ckpt, _, data = _checkpoint_and_data(args)
    folder = export_embeddings(ckpt.model, data.user_ids, data.item_ids, data.titles, args.out)
    print(f"wrote {folder}/embeddings.npz, users.csv and items.csv")


def write_per_user(scorer, data: NCFData, path: str | Path) -> Path:
    """One row per held-out item: ``user_id, split, item_id, rank, full_rank`` (0-based; rank
    among the sampled candidates, full_rank among every item the user did not train on)."""
    frames = []
    for split, eval_set in (("validation", data.validation), ("test", data.test)):
        if eval_set is None:
            continue
        sampled = rank_of_first(score_candidates(scorer, eval_set))
        exclude = data.validation if split == "test" else None
        full = full_ranks(scorer, data, eval_set, exclude=exclude)
        frames.append(
            pd.DataFrame(
                {
                    "user_id": data.user_ids[eval_set.users],
                    "split": split,
                    "item_id": data.item_ids[eval_set.items],
                    "rank": sampled.numpy(),
                    "full_rank": full.numpy(),
                }
            )
        )
    path = Path(path)
    with atomic_write(path) as tmp:
        pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)
    return path


# --------------------------------------------------------------------------------------
# reproduce
# --------------------------------------------------------------------------------------


def cmd_reproduce(args: argparse.Namespace) -> None:
    from ncf_lib.study import grid, report, runner

    data, full = grid.build_splits(load_ratings(args.dataset, args.data_dir), seed=42)
    out = Path(args.out or Path("results") / _slug(args.dataset))
    specs = grid.paper_grid(args.seeds, args.epochs, args.study_epochs, args.factors)
    if args.only_main:
        specs = [s for s in specs if s.study == "main"]
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    kept, notes = runner.finished_rows(out / "results.csv")
    for note in notes:
        print(note)
    done = set(kept["key"])
    todo = [s for s in specs if s.key not in done]
    speed = grid.seconds_per_million_rows(data)
    minutes = grid.estimate_seconds(todo, data, speed) / 60 / min(args.jobs, os.cpu_count() or 1)
    print(f"data: {data.name}: {data.n_users:,} users, {data.n_items:,} items")
    print(
        f"{len(todo)} runs to do ({len(specs) - len(todo)} already in {out}/results.csv); "
        f"estimated {minutes:.0f} min of training on this machine",
        flush=True,
    )

    def show(row: dict) -> None:
        print(
            f"{row['study']:<9} {row['model']:<9} f={row['factors']:<3} seed={row['seed']} "
            f"ng={row['num_ng']} depth={row['depth']}  HR@10 {row['hr@10']:.3f} "
            f"NDCG@10 {row['ndcg@10']:.3f}  corrected HR@10 {row['corrected_hr@10']:.3f}  "
            f"full HR@10 {row['full_hr@10']:.3f}  "
            f"epoch {row['epoch']}  {row['seconds']:.0f} s",
            flush=True,
        )

    results = runner.run_grid(
        todo,
        data,
        out / "results.csv",
        full=full,
        history_path=out / "history.csv",
        on_row=show,
        jobs=args.jobs,
    )
    results = results[results["key"].isin({s.key for s in specs})]
    elsewhere = len(specs) - len(results)
    if elsewhere:
        print(
            f"{elsewhere} runs are being trained by another process into {out}; it adds "
            "their rows and writes the full report"
        )
    histories = runner.read_results(out / "history.csv")
    summary_path = report.write_report(results, histories, out, dataset_label(data.name))
    print(report.markdown_summary(report.summary(results)))
    print(f"report: {summary_path}")


# --------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------


def _data_arguments(parser: argparse.ArgumentParser, *, dataset_default: str | None) -> None:
    parser.add_argument(
        "--dataset",
        default=dataset_default,
        help=DATASET_HELP if dataset_default else "override the dataset recorded in the checkpoint",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="download cache (default: $NCF_DATA_DIR or data/ in the repository)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ncf_lib",
        description="Neural Collaborative Filtering (GMF, MLP, NeuMF) on MovieLens.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="summarise a dataset and its leave-one-out split")
    _data_arguments(info, dataset_default="ml-1m")
    info.add_argument(
        "--num-ng-test",
        type=int,
        default=99,
        help="sampled negatives per held-out item (default 99)",
    )
    info.add_argument("--seed", type=int, default=42, help="seed of the candidates")
    info.set_defaults(run=cmd_info)

    d = TrainConfig()
    m = ModelConfig()
    train = commands.add_parser(
        "train",
        help="train GMF, MLP, NeuMF (--pretrain: with pre-training) or MF",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Train a model with leave-one-out evaluation (HR@K, NDCG@K over 1 held-out + 99\n"
            "sampled items). Model selection: by default each user's second-latest\n"
            "interaction is a validation item; the epoch with the best validation HR is\n"
            "kept and its TEST metrics are reported (per-epoch test metrics are printed to\n"
            "show the curve). --select-on test picks the epoch on the test items, as the\n"
            "paper's code and popular ports do: optimistic, for comparison only."
        ),
    )
    _data_arguments(train, dataset_default="ml-1m")
    train.set_defaults(dataset=None)  # ml-1m, or with --resume the checkpoint's
    train.add_argument("--model", default="neumf", choices=list(MODELS))
    train.add_argument(
        "--epochs", type=int, default=None, help=f"epochs (each stage; default {d.epochs})"
    )
    train.add_argument("--batch-size", type=int, default=d.batch_size)
    train.add_argument("--lr", type=float, default=d.lr, help="learning rate")
    train.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=d.optimizer,
        help="adam (the paper's), sgd, or sparse-adam: only the embedding rows a batch "
        "uses are updated (much faster per step on large catalogues; another optimiser)",
    )
    train.add_argument(
        "--l2",
        type=float,
        default=d.l2,
        help="L2 penalty on the embedding rows of each batch (default 0)",
    )
    train.add_argument(
        "--factor-num",
        type=int,
        default=m.factor_num,
        help="predictive factors (GMF embedding size)",
    )
    train.add_argument(
        "--layers",
        type=int,
        nargs="+",
        default=list(m.layers),
        help="MLP widths; the first is the concatenated user+item embedding",
    )
    train.add_argument(
        "--dropout",
        type=float,
        default=m.dropout,
        help="dropout after each hidden MLP layer (default 0, as the paper)",
    )
    train.add_argument(
        "--num-ng",
        type=int,
        default=d.num_ng,
        help="training negatives per positive, re-sampled every epoch",
    )
    train.add_argument(
        "--num-ng-test",
        type=int,
        default=99,
        help="sampled negatives per held-out item (default 99: the paper's 100 candidates)",
    )
    train.add_argument("--top-k", type=int, default=d.top_k)
    train.add_argument("--seed", type=int, default=d.seed)
    train.add_argument(
        "--select-on",
        choices=["validation", "test"],
        default=d.select_on,
        help="which held-out items choose the best epoch (default validation)",
    )
    train.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early stopping: epochs without a better selection HR",
    )
    train.add_argument(
        "--pretrain",
        action="store_true",
        help="with --model neumf: train GMF and MLP first (or load --gmf/--mlp), "
        "then fine-tune NeuMF initialised from them",
    )
    train.add_argument("--gmf", metavar="CKPT", help="pre-trained GMF checkpoint")
    train.add_argument("--mlp", metavar="CKPT", help="pre-trained MLP checkpoint")
    train.add_argument(
        "--alpha",
        type=float,
        default=0.5,
        help="weight of GMF in the pre-trained output layer (paper: 0.5)",
    )
    train.add_argument(
        "--finetune-optimizer",
        choices=["adam", "sgd"],
        default=FINETUNE["optimizer"],
        help="optimiser of the pre-trained NeuMF (paper: sgd)",
    )
    train.add_argument(
        "--finetune-lr",
        type=float,
        default=FINETUNE["lr"],
        help="learning rate of the pre-trained NeuMF",
    )
    train.add_argument(
        "--resume",
        metavar="CKPT",
        help="continue the interrupted run that wrote CKPT, with its settings (--epochs "
        "may extend it); reaches the numbers of an uninterrupted run",
    )
    train.add_argument("--out", default="checkpoints", help="checkpoint folder")
    train.add_argument("--log-dir", default="runs", help="TensorBoard folder")
    train.add_argument("--no-log", action="store_true", help="no TensorBoard logs")
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    train.add_argument(
        "--engine",
        choices=["hand", "autograd"],
        default="hand",
        help="gradients on the CPU: hand (default; ncf_lib.hand_gradients, the "
        "same numbers as autograd, faster) or autograd",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(run=cmd_train)

    ev = commands.add_parser("evaluate", help="sampled and full-ranking metrics of a checkpoint")
    ev.add_argument("checkpoint")
    _data_arguments(ev, dataset_default=None)
    ev.add_argument("--top-k", type=int, default=10)
    ev.add_argument("--seed", type=int, default=0, help="seed of the random reference scorer")
    ev.set_defaults(run=cmd_evaluate)

    ev.add_argument(
        "--per-user", metavar="CSV", help="also write each held-out item's rank per user"
    )

    rec = commands.add_parser(
        "recommend", help="top-k movies for a user, or for a new user from liked movies"
    )
    rec.add_argument("checkpoint")
    rec.add_argument("--user", help="original user id (as in the ratings file)")
    rec.add_argument(
        "--like",
        action="append",
        metavar="TITLE",
        help="a movie a new user likes, by title (repeat it); the user is folded in",
    )
    rec.add_argument("--like-ids", nargs="+", metavar="ID", help="liked movies by original id")
    rec.add_argument("-k", type=int, default=10, help="how many movies")
    rec.add_argument("--seed", type=int, default=0, help="seed of the fold-in")
    _data_arguments(rec, dataset_default=None)
    rec.set_defaults(run=cmd_recommend)

    sim = commands.add_parser("similar", help="the movies closest to one in the model's space")
    sim.add_argument("checkpoint")
    sim.add_argument("--item", required=True, help="original item id or title")
    sim.add_argument("-k", type=int, default=10, help="how many movies")
    _data_arguments(sim, dataset_default=None)
    sim.set_defaults(run=cmd_similar)

    exp = commands.add_parser(
        "export", help="user and item embeddings with ids and titles (.npz and .csv)"
    )
    exp.add_argument("checkpoint")
    exp.add_argument("out", help="folder for embeddings.npz, users.csv, items.csv")
    _data_arguments(exp, dataset_default=None)
    exp.set_defaults(run=cmd_export)

    rep = commands.add_parser(
        "reproduce",
        help="the paper's results table and studies, with MF and ItemPop",
        description="Train every model of the paper's table (ItemPop, MF, GMF, MLP, NeuMF, "
        "NeuMF with pre-training) over several seeds, plus the studies (factors, "
        "negatives, depth). Resumes from OUT/results.csv; writes OUT/summary.md "
        "and plots.",
    )
    _data_arguments(rep, dataset_default="ml-1m")
    rep.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    rep.add_argument("--epochs", type=int, default=20, help="epochs of the main runs")
    rep.add_argument(
        "--study-epochs", type=int, default=10, help="epochs of the negatives and depth studies"
    )
    rep.add_argument("--factors", type=int, nargs="+", default=[8, 16, 32, 64])
    rep.add_argument("--only-main", action="store_true", help="skip the studies")
    rep.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs trained at once, one thread each (default 1; use the number "
        "of cores: 2 halves the time on 2 cores)",
    )
    rep.add_argument("--out", default=None, help="results folder (default results/DATASET)")
    rep.set_defaults(run=cmd_reproduce)
    return parser


def _terminate(signum, frame) -> None:
    raise Interrupted(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)  # end like Ctrl-C: say what was kept
    ranks = distributed.from_environment()  # under torchrun, only rank 0 prints
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
