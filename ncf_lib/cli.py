"""Command line: ``python -m ncf_lib {info,train,evaluate,recommend}``.

Thin by design: parse arguments, call the package, print. Errors a user can fix (a missing
file, an unknown dataset, a bad value) are printed as one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import time

from ncf_lib.data import DataFormatError, build_dataset, load_ratings
from ncf_lib.download import DownloadError

DATASET_HELP = (
    "ml-1m (default), ml-100k, ml-20m, ml-25m, ml-latest-small (downloaded once into "
    "--data-dir), synthetic (generated, MovieLens-1M-shaped), synthetic:USERSxITEMSxN, or a "
    "path to a ratings file or an extracted MovieLens folder"
)

#: Exceptions that mean "the user asked for something that cannot be done", not a bug.
USER_ERRORS = (FileNotFoundError, DownloadError, DataFormatError, ValueError, KeyError)


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="ml-1m", help=DATASET_HELP)
    parser.add_argument("--data-dir", default=None,
                        help="download cache (default: $NCF_DATA_DIR or data/ in the repository)")
    parser.add_argument("--num-ng-test", type=int, default=99,
                        help="sampled negatives per held-out item (default 99: the paper ranks "
                             "100 items; the seed notebook used 100)")
    parser.add_argument("--seed", type=int, default=42, help="seed of every random choice")


def cmd_info(args: argparse.Namespace) -> None:
    """Load, re-index, split and draw candidates; print a summary with stage timings."""
    clock = time.perf_counter()
    ratings = load_ratings(args.dataset, args.data_dir, seed=args.seed)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ncf_lib",
        description="Neural Collaborative Filtering (GMF, MLP, NeuMF) on MovieLens.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="summarise a dataset and its leave-one-out split")
    _add_data_arguments(info)
    info.set_defaults(run=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except USER_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0
