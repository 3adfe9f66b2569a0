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
import os
import signal
import sys
import time
import warnings
from contextlib import nullcontext, redirect_stdout
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ncf_lib import scale
from ncf_lib.checkpoints import load_checkpoint
from ncf_lib.cli.flags import (
    OWN_FIELDS,
    UsageError,
    add,
    add_config_flags,
    check_output,
    check_ranges,
    check_train_flags,
    inputs_of,
    output_file,
    run_settings,
)
from ncf_lib.dataset import build_dataset
from ncf_lib.errors import CheckpointError, Interrupted, UserError
from ncf_lib.files import atomic_write, check_writable
from ncf_lib.metrics import PER_USER_COLUMNS, PopularityScorer, evaluate, per_user_ranks
from ncf_lib.models import MODELS, ModelConfig
from ncf_lib.pretraining import FINETUNE
from ncf_lib.ratings import load_ratings
from ncf_lib.runs.stages import command, refuse_to_replace, slug
from ncf_lib.runs.train import Pretraining, train_run
from ncf_lib.scale.candidates import large_catalogue_candidates
from ncf_lib.scale.distributed import from_environment
from ncf_lib.scale.parse_cache import read_ratings_cached
from ncf_lib.study.baselines import against_references
from ncf_lib.study.report import dataset_summary
from ncf_lib.study.runner import reproduce
from ncf_lib.train import TrainConfig, resolve_device
from ncf_lib.use.export import EXPORTED, export_embeddings, is_export
from ncf_lib.use.foldin import FoldInConfig, fold_in
from ncf_lib.use.index import KINDS
from ncf_lib.use.recommend import recommend, recommendation_table
from ncf_lib.use.service import Service, checkpoint_and_data
from ncf_lib.use.similar import similar_items
from ncf_lib.use.titles import match_title, spreadsheet_safe, visible

DATASET_HELP = (
    "ml-1m (default), ml-100k, ml-20m, ml-25m, ml-latest-small (downloaded once into "
    "--data-dir), synthetic (generated, MovieLens-1M-shaped), synthetic:USERSxITEMSxN, or a "
    "path to a ratings file or an extracted MovieLens folder"
)
#: The candidate sampler of every dataset the command line builds: the default one, and for
#: catalogues above 10,000 items one whose time grows with the candidates drawn.
DRAW = large_catalogue_candidates


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


def _ratings(dataset: str, data_dir: str | None):
    """A dataset's ratings; a downloaded file is parsed once and its columns kept beside it."""
    return load_ratings(dataset, data_dir, read=read_ratings_cached)


def cmd_info(args: argparse.Namespace) -> None:
    """Load, re-index, split and draw candidates; print a summary with stage timings."""
    clock = time.perf_counter()
    ratings = _ratings(args.dataset, args.data_dir)
    timings = {"load": time.perf_counter() - clock}
    data = build_dataset(
        ratings, num_ng_test=args.num_ng_test, seed=args.seed, timings=timings, draw=DRAW
    )
    for key, value in dataset_summary(data, len(ratings.ratings), timings).items():
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


def cmd_train(args: argparse.Namespace) -> None:
    check_train_flags(args)
    resumed = load_checkpoint(args.resume) if args.resume else None
    if resumed is not None and resumed.training is None:
        raise CheckpointError(f"--resume {args.resume}: this checkpoint has no training state")
    config, model_config, name, num_ng_test = run_settings(args, resumed)
    config = replace(config, progress=not args.no_progress)
    sampler = args.sampler or (resumed.training["sampler"]["kind"] if resumed else "auto")
    config, options = scale.fit_options(
        config, hand_gradients=args.engine == "hand", sampler=sampler
    )
    parts = {n: (p, load_checkpoint(p)) for n, p in (("gmf", args.gmf), ("mlp", args.mlp)) if p}
    resolve_device(config.device)
    check_writable(Path(args.resume).parent if args.resume else args.out, "--out")
    if not args.no_log:
        check_writable(args.log_dir, "--log-dir")
    dataset = args.dataset or (resumed.dataset if resumed else "ml-1m")
    clock = time.perf_counter()
    data = build_dataset(
        _ratings(dataset, args.data_dir), num_ng_test=num_ng_test, seed=config.seed,
        validation=config.select_on == "validation", draw=DRAW,
    )  # fmt: skip
    if not (resumed or args.overwrite):
        pretraining = [n for n in ("gmf", "mlp") if n not in parts] + ["neumf-pretrained"]
        refuse_to_replace(args.out, data, pretraining if args.pretrain else [name])
    print(
        f"data: {data.name}: {data.n_users:,} users, {data.n_items:,} items, "
        f"{data.n_train:,} training positives, {data.test.users.size:,} test users x "
        f"{data.test.candidates.shape[1]} candidates ({time.perf_counter() - clock:.1f} s)"
    )
    k = config.top_k
    pop = evaluate(PopularityScorer.fit(data), data.test, k)
    print(f"reference: popularity test HR@{k} {pop['hr']:.3f} NDCG@{k} {pop['ndcg']:.3f}")
    finetune = {"lr": args.finetune_lr, "optimizer": args.finetune_optimizer}
    result = train_run(
        data, name, config, model_config, out=args.out,
        log_dir=None if args.no_log else args.log_dir,
        resume=(args.resume, resumed) if resumed else None,
        pretraining=Pretraining(args.alpha, finetune, parts) if args.pretrain else None,
        fit_options=options, main=(ranks := from_environment()) is None or ranks.main,
        on_epoch=lambda row: _print_epoch(row, k), say=lambda line: print(line, flush=True),
    )  # fmt: skip
    best = result.best
    print(f"done in {time.perf_counter() - clock:.1f} s; best epoch chosen on {config.select_on}")
    print(f"checkpoint: {result.checkpoint}")
    if not args.no_log:
        print(
            f"TensorBoard logs: {args.log_dir}/  (make tensorboard, or "
            f"{command('tensorboard', '--logdir', args.log_dir)})"
        )
    if "val_hr" in best:
        print(f"validation at that epoch: HR@{k} = {best['val_hr']:.3f}, "
              f"NDCG@{k} = {best['val_ndcg']:.3f}")  # fmt: skip
    print(
        f"Best epoch {result.best_epoch:03d}: HR = {best['test_hr']:.3f}, "
        f"NDCG = {best['test_ndcg']:.3f}"
    )


def _checkpoint_and_data(args: argparse.Namespace, ckpt=None):
    """The checkpoint (loaded here unless given) and the data it was trained on, verified."""
    return checkpoint_and_data(args.checkpoint, args.dataset, args.data_dir, ckpt)


def cmd_serve(args: argparse.Namespace) -> None:
    try:
        import uvicorn

        from ncf_lib.use.server import create_app
    except ImportError as err:
        raise UsageError(
            f"serve needs FastAPI and uvicorn ({err.name} is missing): pip install "
            "'ncf-tutorial[serve]' (make install installs them)"
        ) from None
    service = Service.load(args.checkpoint, args.dataset, args.data_dir, index=args.index)
    torch.set_num_threads(1)  # small models, many requests: one core each, no oversubscription
    print(f"serving {service.about['model']} of {args.checkpoint} on "
          f"http://{args.host}:{args.port}/ (API: /docs; Ctrl-C stops it)", flush=True)  # fmt: skip
    uvicorn.run(create_app(service), host=args.host, port=args.port, log_level="warning")


def cmd_evaluate(args: argparse.Namespace) -> None:
    ckpt = load_checkpoint(args.checkpoint)
    if args.per_user:  # checked before the data is built and the metrics computed
        inputs = inputs_of(args.dataset or ckpt.dataset, args.data_dir, args.checkpoint)
        output_file("--per-user", args.per_user, inputs, force=args.force, own=_per_user_file)
    ckpt, data = _checkpoint_and_data(args, ckpt)
    k = args.top_k
    print(
        f"checkpoint: {args.checkpoint} ({type(ckpt.model).__name__}, epoch {ckpt.epoch}, "
        f"data {data.name})"
    )
    table = against_references(ckpt.model.score, data, k, seed=args.seed)
    print(f"{'scorer':<12} {'split':<11} {f'HR@{k}':>8} {f'NDCG@{k}':>8} "
          f"{f'full HR@{k}':>11} {f'full NDCG@{k}':>12}")  # fmt: skip
    for r in table.itertuples():
        print(f"{r.scorer:<12} {r.split:<11} {r.hr:8.3f} {r.ndcg:8.3f} "
              f"{r.full_hr:11.3f} {r.full_ndcg:12.3f}")  # fmt: skip
    if args.per_user:
        ranks = per_user_ranks(ckpt.model.score, data)
        for column in ("user_id", "item_id"):  # ids that are names: no formulas
            if ranks[column].dtype == object:
                ranks[column] = ranks[column].astype(str).map(spreadsheet_safe)
        with atomic_write(args.per_user) as tmp:
            ranks.to_csv(tmp, index=False)
        print(f"per-user ranks of the model: {args.per_user}")


def _per_user_file(path: Path) -> bool:
    """Does ``path`` look like ``evaluate --per-user``'s output (its header)?"""
    with open(path, "rb") as handle:
        return handle.readline().rstrip(b"\r\n") == ",".join(PER_USER_COLUMNS).encode()


def _shown(table) -> str:
    """A table for the terminal, its text (titles, ids that are names) made :func:`visible`."""
    return table.map(lambda v: visible(v) if isinstance(v, str) else v).to_string(index=False)


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
    print(f"Top {len(items)} for {visible(who)}:")
    print(_shown(recommendation_table(items, probs, data.item_ids, data.titles)))


def cmd_similar(args: argparse.Namespace) -> None:
    if args.k < 1:
        raise UsageError(f"-k must be at least 1, got {args.k}")
    ckpt, data = _checkpoint_and_data(args)
    item = _item(data, args.item)
    items, cosines = similar_items(ckpt.model, item, args.k, ids=data.item_ids)
    name = data.titles[item] if data.titles is not None else data.item_ids[item]
    model = type(ckpt.model).__name__
    print(visible(f"Closest to {name} (id {data.item_ids[item]}) in {model}'s item space:"))
    table = recommendation_table(items, cosines, data.item_ids, data.titles)
    print(_shown(table.rename(columns={"probability": "cosine"})))


def cmd_export(args: argparse.Namespace) -> None:
    ckpt = load_checkpoint(args.checkpoint)
    inputs = inputs_of(args.dataset or ckpt.dataset, args.data_dir, args.checkpoint)
    folder = Path(args.out)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"export folder {folder} is a file; give a folder")
    check_output("export folder", folder, inputs, force=True, own=Path.is_dir)
    for name in EXPORTED:
        check_output("export folder", folder / name, inputs, force=args.force, own=is_export)
    check_writable(folder, "export folder")
    ckpt, data = _checkpoint_and_data(args, ckpt)
    folder = export_embeddings(ckpt.model, data.user_ids, data.item_ids, data.titles, args.out)
    print(f"wrote {folder}/embeddings.npz, users.csv and items.csv")


def cmd_reproduce(args: argparse.Namespace) -> None:
    path = reproduce(
        _ratings(args.dataset, args.data_dir),
        args.out or Path("results") / slug(args.dataset),
        seeds=args.seeds, epochs=args.epochs, study_epochs=args.study_epochs,
        factors=args.factors, only_main=args.only_main, jobs=args.jobs,
        say=lambda line: print(line, flush=True),
    )  # fmt: skip
    print(f"report: {path}")


def _command(commands, name: str, text: str, run, checkpoint: bool = False, **kwargs):
    """A sub-command with the data arguments (and a checkpoint to read)."""
    parser = commands.add_parser(name, help=text, **kwargs)
    if checkpoint:
        parser.add_argument("checkpoint")
    add(
        parser,
        "--dataset",
        str,
        None if checkpoint else "ml-1m",
        "override the dataset recorded in the checkpoint" if checkpoint else DATASET_HELP,
    )
    add(parser, "--data-dir", str, None, "download cache (default: $NCF_DATA_DIR or data/)")
    parser.set_defaults(run=run)
    return parser


#: What ``python -m ncf_lib --help`` says first (plain text: a terminal shows it as it is).
DESCRIPTION = (
    "Neural Collaborative Filtering (GMF, MLP, NeuMF) on MovieLens: train a model, evaluate "
    "it, recommend movies and find similar ones, export its embeddings, or reproduce the "
    "paper's results table. 'python -m ncf_lib COMMAND --help' shows a command's options."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ncf_lib", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    info = _command(commands, "info", "summarise a dataset and its leave-one-out split", cmd_info)
    add(info, "--num-ng-test", int, 99, "sampled negatives per held-out item (default 99)")
    add(info, "--seed", int, 42, "seed of the candidates")

    train = _command(commands, "train", TRAIN_HELP[0], cmd_train, description=TRAIN_HELP[1])
    train.set_defaults(dataset=None)  # ml-1m, or with --resume the checkpoint's
    add(train, "--model", tuple(MODELS), None, "the model (default neumf)")
    add_config_flags(train, TrainConfig, skip=OWN_FIELDS, choices={"optimizer": scale.OPTIMIZERS})
    add_config_flags(train, ModelConfig)
    add(train, "--num-ng-test", int, None, "sampled negatives per held-out item (default 99)")
    add(train, "--pretrain", bool, False, "with --model neumf: pre-train GMF and MLP first")
    add(train, "--gmf", str, None, "--pretrain with this trained GMF", metavar="CKPT")
    add(train, "--mlp", str, None, "--pretrain with this trained MLP", metavar="CKPT")
    add(train, "--alpha", float, 0.5, "weight of GMF in the pre-trained NeuMF (paper: 0.5)")
    add(train, "--finetune-optimizer", ("adam", "sgd"), FINETUNE["optimizer"], "(paper: sgd)")
    add(train, "--finetune-lr", float, FINETUNE["lr"], "learning rate of the pre-trained NeuMF")
    add(train, "--resume", str, None, "continue the run that wrote CKPT", metavar="CKPT")
    add(train, "--out", str, "checkpoints", "checkpoint folder")
    add(train, "--overwrite", bool, False, "replace an unfinished run's or other data's checkpoint")
    add(train, "--log-dir", str, "runs", "TensorBoard folder")
    add(train, "--no-log", bool, False, "no TensorBoard logs")
    add(train, "--no-progress", bool, False, "no progress bars")
    add(train, "--engine", ("autograd", "hand"), "autograd", "hand: ncf_lib.scale.hand_gradients")
    add(train, "--sampler", scale.SAMPLERS, None, "negatives (default auto: torch on CUDA)")

    ev = _command(commands, "evaluate", "sampled and full-ranking metrics", cmd_evaluate, True)
    add(ev, "--top-k", int, 10, "K of HR@K and NDCG@K")
    add(ev, "--seed", int, 0, "seed of the random reference scorer")
    add(ev, "--per-user", str, None, "also write each held-out item's rank", metavar="CSV")
    add(ev, "--force", bool, False, "replace a previous --per-user file")
    rec = _command(commands, "recommend", "top-k movies for a user", cmd_recommend, True)
    add(rec, "--user", str, None, "original user id (as in the ratings file)")
    add(rec, "--like", str, None, "a movie a new user likes (repeat it)", action="append")
    add(rec, "--like-ids", [str], None, "movies a new user likes, by original id")
    add(rec, "-k", int, 10, "how many movies")
    add(rec, "--seed", int, 0, "seed of the fold-in")
    sim = _command(commands, "similar", "the movies closest to one", cmd_similar, True)
    add(sim, "--item", str, None, "original item id or title", required=True)
    add(sim, "-k", int, 10, "how many movies")
    exp = _command(commands, "export", "embeddings with ids and titles", cmd_export, True)
    exp.add_argument("out", help="folder for embeddings.npz, users.csv, items.csv")
    add(exp, "--force", bool, False, "replace a previous export in that folder")

    srv = _command(commands, "serve", "an HTTP service with a demo page", cmd_serve, True)
    add(srv, "--host", str, "127.0.0.1", "address to listen on (127.0.0.1: this machine only)")
    add(srv, "--port", int, 8000, "port to listen on")
    add(srv, "--index", KINDS, None, "MF or GMF: answer known users from an inner-product index")

    rep = _command(
        commands, "reproduce", REPRODUCE_HELP[0], cmd_reproduce, description=REPRODUCE_HELP[1]
    )
    add(rep, "--seeds", [int], [0, 1, 2], "seeds of every run")
    add(rep, "--epochs", int, 20, "epochs of the main runs")
    add(rep, "--study-epochs", int, 10, "epochs of the negatives and depth studies")
    add(rep, "--factors", [int], [8, 16, 32, 64], "predictive factors of the factors study")
    add(rep, "--only-main", bool, False, "skip the studies")
    add(rep, "--jobs", int, 1, "runs trained at once, one thread each (the number of cores)")
    add(rep, "--out", str, None, "results folder (default results/DATASET)")
    return parser


def _note(message, *_) -> None:
    """A warning as one line on stderr (``note: ...``), without the code that raised it."""
    print(f"note: {visible(message)}", file=sys.stderr, flush=True)


def _terminate(signum, frame) -> None:
    raise Interrupted()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)  # end like Ctrl-C: say what was kept
    ranks = from_environment()  # under torchrun, only rank 0 prints
    quiet = ranks is not None and not ranks.main
    try:
        with open(os.devnull, "w") if quiet else nullcontext(sys.stdout) as out:
            with redirect_stdout(out), warnings.catch_warnings():
                warnings.showwarning = _note
                check_ranges(args)
                code = args.run(args) or 0
                sys.stdout.flush()  # a closed pipe shows here, not at exit
                return code
    except UserError as err:
        print(f"error: {visible(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # an interrupted train says what it kept
        print(str(err) or "interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`... | head -1`): stop quietly, as
        # command-line tools do; what is left to flush goes nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    finally:
        signal.signal(signal.SIGTERM, previous)
