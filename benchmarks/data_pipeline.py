"""Time the data pipeline on MovieLens-1M-shaped data (or any --dataset file/folder).

    python benchmarks/data_pipeline.py                       # generated 6,040 x 3,706 x 1,000,209
    python benchmarks/data_pipeline.py --dataset ../shared/data/ml-100k

The generated ratings are written as a ``::``-separated ``ratings.dat`` by a child process, so
the peak memory printed is that of parsing and what follows, not of the generator.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from ncf_lib.dataset import build_dataset
from ncf_lib.ratings import Ratings, find_ratings_file, read_ratings
from ncf_lib.sampling import epoch_arrays, sample_negatives
from ncf_lib.synthetic import ML1M_SHAPE, synthetic_ratings


def write_dat(frame, path: Path) -> None:
    """Write ratings as MovieLens-1M's ``UserID::MovieID::Rating::Timestamp``."""
    frame = frame.astype({"rating": int})
    frame.to_csv(path, sep=":", header=False, index=False)  # ':' then '::' below
    path.write_text(path.read_text().replace(":", "::"))


def write_ml1m_like(path: Path, seed: int) -> None:
    write_dat(synthetic_ratings(*ML1M_SHAPE, seed=seed), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="ratings file or MovieLens folder (default: generated)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="epochs of negatives to time")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.dataset:
            path = find_ratings_file(args.dataset)
        else:
            path = Path(tmp) / "ratings.dat"
            child = multiprocessing.get_context("spawn").Process(
                target=write_ml1m_like, args=(path, args.seed)
            )
            child.start()
            child.join()
        rows: list[tuple[str, float]] = []
        clock = time.perf_counter()
        frame = read_ratings(path)
        rows.append(("parse", time.perf_counter() - clock))
        timings: dict[str, float] = {}
        data = build_dataset(Ratings(frame, None, str(path)), seed=args.seed, timings=timings)
        rows += list(timings.items())
        rows.append(("parse + reindex + split + candidates", sum(t for _, t in rows)))
        rng = np.random.default_rng(args.seed)
        for label, fn in [
            ("negatives only", lambda: sample_negatives(data, 4, rng)),
            ("epoch: negatives + shuffle", lambda: epoch_arrays(data, 4, rng)),
        ]:
            best = float("inf")
            for _ in range(args.repeat):
                clock = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - clock)
            rows.append((f"{label} (best of {args.repeat})", best))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        f"data: {path.name}: {data.n_users:,} users, {data.n_items:,} items, "
        f"{len(frame):,} ratings, {data.n_train * 5:,} training rows per epoch"
    )
    for label, seconds in rows:
        print(f"{label:<45} {seconds:8.3f} s")
    print(f"{'peak RSS':<45} {peak:8.0f} MiB")


if __name__ == "__main__":
    main()
