"""Every stage on MovieLens-20M- or 25M-shaped data: seconds and peak memory per stage.

    python benchmarks/scale.py --shape ml-20m          # 138,493 x 26,744 x 20,000,263
    python benchmarks/scale.py --shape ml-25m --steps 200

Generates the ratings, writes them as a MovieLens ``ratings.csv``, then times what
``python -m ncf_lib train`` does with it: parse (twice: the second run reads the parse
cache), re-index, split and draw the test
candidates, draw one epoch of negatives, ``--steps`` NeuMF training steps (the epoch's time
extrapolated from them), sampled evaluation of every test user, and full-ranking
evaluation of ``--full-users`` users (extrapolated to all). Peak memory is the resident set
size sampled every 20 ms during each stage (Linux ``/proc``). Writes
``results/scale-<shape>.md``.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ncf_lib.dataset import build_dataset
from ncf_lib.metrics import evaluate, full_ranking_metrics
from ncf_lib.models import ModelConfig, build_model
from ncf_lib.ratings import Ratings
from ncf_lib.sampling import batches, epoch_arrays
from ncf_lib.scale import hand_gradients
from ncf_lib.scale.optimizers import make_optimizer
from ncf_lib.scale.parse_cache import read_ratings_cached
from ncf_lib.synthetic import synthetic_ratings
from ncf_lib.train import TrainConfig

SHAPES = {"ml-20m": (138_493, 26_744, 20_000_263), "ml-25m": (162_541, 59_047, 25_000_095)}


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@contextmanager
def stage(rows: list, name: str, note: str = ""):
    """Time a stage and sample its peak resident memory."""
    peak, done = [rss_mib()], threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss_mib())

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    clock = time.perf_counter()
    extra: dict = {}
    yield extra
    seconds = time.perf_counter() - clock
    done.set()
    thread.join()
    rows.append((name, seconds, max(peak[0], rss_mib()), extra.get("note", note)))
    print(f"{name}: {seconds:.1f} s, peak {rows[-1][2]:,.0f} MiB {rows[-1][3]}", flush=True)


def time_training(rows: list, data, epoch, setting: str, steps: int) -> None:
    """Time ``steps`` NeuMF steps of one ``BATCH:LR:OPTIMIZER`` setting on a fresh model
    (after 10 warm-up steps) and extrapolate to the whole epoch."""
    batch, lr, optimizer = setting.split(":")
    batch = int(batch)
    model = build_model("neumf", data.n_users, data.n_items, ModelConfig(factor_num=32))
    opt = make_optimizer(model, TrainConfig(lr=float(lr), optimizer=optimizer))
    steps = min(steps, epoch[0].numel() // batch - 10)
    part = [t[: (steps + 10) * batch] for t in epoch]
    hand_gradients.train_epoch(
        model, opt, batches(*(t[: 10 * batch] for t in part), batch_size=batch)
    )
    timed = [t[10 * batch :] for t in part]
    with stage(rows, f"{steps} training steps, batch {batch}, {optimizer} lr {lr}"):
        hand_gradients.train_epoch(model, opt, batches(*timed, batch_size=batch))
    per_step = rows[-1][1] / steps
    epoch_steps = -(-epoch[0].numel() // batch)
    params = sum(p.numel() for p in model.parameters())
    note = (
        f"NeuMF {params:,} parameters: {per_step * 1e3:.2f} ms/step, "
        f"{epoch_steps:,} steps = {per_step * epoch_steps / 60:.1f} min per epoch"
    )
    rows[-1] = (*rows[-1][:3], note)
    print(note, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shape", default="ml-20m", help="ml-20m, ml-25m or USERSxITEMSxINTERACTIONS"
    )
    parser.add_argument("--steps", type=int, default=300, help="training steps timed")
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["256:0.001:adam", "256:0.001:sparse-adam", "2048:0.004:sparse-adam"],
        help="BATCH:LR:OPTIMIZER training settings to time",
    )
    parser.add_argument("--full-users", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    try:
        shape = SHAPES.get(args.shape) or tuple(int(x) for x in args.shape.split("x"))
    except ValueError:
        parser.error(f"--shape {args.shape}: expected ml-20m, ml-25m or USERSxITEMSxINTERACTIONS")
    rows: list = []
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ratings.csv"
        with stage(rows, "generate"):
            frame = synthetic_ratings(*shape, seed=args.seed)
        with stage(rows, "write ratings.csv"):
            frame.to_csv(path, index=False, header=["userId", "movieId", "rating", "timestamp"])
        del frame
        size = f"{path.stat().st_size / 2**20:,.0f} MiB file"
        with stage(rows, "parse, first run (and write the parse cache)", size):
            parsed = read_ratings_cached(path)
        del parsed
        with stage(rows, "parse, second run (from the cache)"):
            parsed = read_ratings_cached(path)
        timings: dict[str, float] = {}
        with stage(rows, "re-index, split, test candidates") as extra:
            data = build_dataset(Ratings(parsed, None, args.shape), seed=args.seed, timings=timings)
            extra["note"] = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        del parsed
        with stage(rows, "one epoch of negatives (4 per positive)") as extra:
            epoch = epoch_arrays(data, 4, np.random.default_rng(args.seed))
            extra["note"] = f"{epoch[0].numel():,} rows"
        for setting in args.settings:
            time_training(rows, data, epoch, setting, args.steps)
        del epoch
        model = build_model("neumf", data.n_users, data.n_items, ModelConfig(factor_num=32))
        model.eval()
        with stage(rows, "sampled evaluation, every test user"):
            evaluate(model.score, data.test, 10)
        users = min(args.full_users, data.test.users.size)
        subset = type(data.test)(data.test.users[:users], data.test.candidates[:users])
        with stage(rows, f"full-ranking evaluation, {users:,} users") as extra:
            full_ranking_metrics(model.score, data, subset, 10, exclude=data.validation)
        share = data.test.users.size / users
        extra_note = f"all {data.test.users.size:,} users: about {rows[-1][1] * share / 60:.1f} min"
        rows[-1] = (*rows[-1][:3], extra_note)
    out = Path(args.out) / f"scale-{args.shape}.md"
    lines = [
        f"# Every stage on {args.shape}-shaped data ({shape[0]:,} x {shape[1]:,} x {shape[2]:,})",
        "",
        f"`python benchmarks/scale.py --shape {args.shape} --steps {args.steps}` on "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}.",
        "",
        "| stage | seconds | peak RSS (MiB) | note |",
        "|---|---|---|---|",
        *[f"| {name} | {sec:.1f} | {mem:,.0f} | {note} |" for name, sec, mem, note in rows],
        "",
    ]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
