"""One NeuMF training step two ways: autograd, and the hand-written gradients.

    python benchmarks/train_step.py                 # MovieLens-1M-shaped, batch 256
    python benchmarks/train_step.py --steps 500 --rounds 5

* ``autograd``: :func:`ncf_lib.train.train_epoch`, the plain loop (``zero_grad``, forward,
  ``BCEWithLogitsLoss``, ``backward``, ``torch.optim.Adam(fused=True).step``);
* ``by hand``: :func:`ncf_lib.hand_gradients.train_epoch` (the command line's default on
  the CPU), the same loop with the gradients computed by hand, the same optimiser.

Both compute the same update (checked here after a few steps; the tests check it bit for
bit for every model). The variants run in turn, ``--rounds`` times each, so that the
machine's noise spreads over both; the median is reported.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ncf_lib import hand_gradients
from ncf_lib.dataset import build_dataset
from ncf_lib.models import build_model
from ncf_lib.ratings import load_ratings
from ncf_lib.sampling import batches, epoch_arrays
from ncf_lib.train import TrainConfig, make_optimizer, train_epoch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import markdown_table  # noqa: E402

VARIANTS = {"autograd": train_epoch, "by hand": hand_gradients.train_epoch}


def make_variant(name: str, data, tensors, batch_size: int):
    """``(model, run)``: a fresh NeuMF and a function running ``n`` training steps of
    variant ``name`` on it, cycling through the epoch's batches."""
    torch.manual_seed(0)
    model = build_model("neumf", data.n_users, data.n_items)
    optimizer = make_optimizer(model, TrainConfig())
    epoch, at = VARIANTS[name], 0

    def run(n: int) -> None:
        nonlocal at
        while n > 0:
            rows = min(n * batch_size, tensors[0].shape[0] - at)
            epoch(
                model,
                optimizer,
                batches(*(t[at : at + rows] for t in tensors), batch_size=batch_size),
            )
            n -= -(-rows // batch_size)
            at = (at + rows) % tensors[0].shape[0]

    return model, run


def same_update(data, tensors, steps: int = 5) -> float:
    """Largest parameter difference between the variants after ``steps`` steps."""
    models = []
    for name in VARIANTS:
        model, run = make_variant(name, data, tensors, 256)
        run(steps)
        models.append([p.detach() for p in model.parameters()])
    return max(float((a - b).abs().max()) for other in models[1:] for a, b in zip(models[0], other))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset",
        default="synthetic",
        help="name or path (default: generated MovieLens-1M-shaped data)",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2000, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()

    data = build_dataset(load_ratings(args.dataset), seed=42)
    tensors = list(epoch_arrays(data, 4, np.random.default_rng(0)))
    steps_per_epoch = -(-tensors[0].shape[0] // args.batch_size)
    difference = same_update(data, tensors)
    if difference > 0:
        raise AssertionError(f"the variants' parameters differ by {difference} after 5 steps")
    runs = {name: make_variant(name, data, tensors, args.batch_size)[1] for name in VARIANTS}
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for name in VARIANTS:
        runs[name](min(200, args.steps))  # warm-up
    for _ in range(args.rounds):
        for name in VARIANTS:
            clock = time.perf_counter()
            runs[name](args.steps)
            times[name].append((time.perf_counter() - clock) / args.steps * 1e3)
    base = statistics.median(times["autograd"])
    frame = pd.DataFrame(
        [
            {
                "step": name,
                "median ms/step": statistics.median(t),
                "range": f"{min(t):.3f}-{max(t):.3f}",
                "epoch s (implied)": statistics.median(t) * steps_per_epoch / 1e3,
                "vs autograd": base / statistics.median(t),
            }
            for name, t in times.items()
        ]
    )
    text = markdown_table(frame)
    command = "python benchmarks/train_step.py " + " ".join(sys.argv[1:])
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    note = (
        f"NeuMF (original settings), batch {args.batch_size}, {steps_per_epoch:,} steps per "
        f"epoch; {args.rounds} rounds of {args.steps:,} steps each, in turn; after 5 "
        f"steps the two give the same parameters (largest difference {difference:.1e})."
    )
    print(text)
    print(note)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "train-step-" + Path(args.dataset).name.replace(":", "-")
    (out / f"{name}.md").write_text(
        f"# {name}\n\nCommand: `{command}`\n\nMachine: {machine}\n\n{text}\n\n{note}\n"
    )
    print(f"wrote {out / name}.md")


if __name__ == "__main__":
    main()
