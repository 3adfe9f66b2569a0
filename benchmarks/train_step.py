"""One training step three ways: autograd, autograd under ``torch.compile``, and the
hand-written gradients.

    python benchmarks/train_step.py                 # NeuMF, MovieLens-1M-shaped, batch 256
    python benchmarks/train_step.py --model gmf --steps 500 --rounds 5
    python benchmarks/train_step.py --compiled      # with the compiled step too

* ``autograd``: :func:`ncf_lib.train.train_epoch`, the plain loop (``zero_grad``, forward,
  ``BCEWithLogitsLoss``, ``backward``, ``torch.optim.Adam(fused=True).step``);
* ``compiled`` (``--compiled``): the same step (``zero_grad``, forward, loss, ``backward``,
  Adam's step) as one function under ``torch.compile``, compiled on its first call (the
  time of that call is reported: with the compiler's cache cold it is the compilation);
* ``by hand``: :func:`ncf_lib.scale.hand_gradients.train_epoch` (opt-in: ``train --engine
  hand``), the same loop with the gradients computed by hand, the same optimiser.

Autograd and the hand-written gradients compute the same update bit for bit (checked here
after a few steps; the tests check it for every model); the compiled step reorders floating
point operations, so its parameters are compared with a tolerance and the difference is
printed. The variants run in turn, ``--rounds`` times each, so that the machine's noise
spreads over all of them; the median is reported.
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
from torch import nn

from ncf_lib.dataset import build_dataset
from ncf_lib.models import build_model
from ncf_lib.ratings import load_ratings
from ncf_lib.sampling import batches, epoch_arrays
from ncf_lib.scale import hand_gradients
from ncf_lib.train import TrainConfig, make_optimizer, train_epoch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import markdown_table  # noqa: E402


def compiled_epoch(model: nn.Module, optimizer: torch.optim.Optimizer):
    """A ``train_epoch`` for ``model`` and ``optimizer`` whose step runs under
    ``torch.compile``; it returns the mean loss as :func:`ncf_lib.train.train_epoch` does."""
    loss_fn = nn.BCEWithLogitsLoss()

    @torch.compile
    def step(users, items, labels):
        optimizer.zero_grad()
        loss = loss_fn(model(users, items), labels)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def epoch(model_, optimizer_, batches_) -> float:
        model.train()
        total, rows = 0.0, 0
        for users, items, labels in batches_:
            total += step(users, items, labels) * labels.shape[0]
            rows += labels.shape[0]
        return float(total) / rows

    return epoch


VARIANTS = {
    "autograd": lambda model, optimizer: train_epoch,
    "compiled": compiled_epoch,
    "by hand": lambda model, optimizer: hand_gradients.train_epoch,
}


def make_variant(name: str, data, tensors, batch_size: int, model_name: str = "neumf"):
    """``(model, run)``: a fresh model and a function running ``n`` training steps of
    variant ``name`` on it, cycling through the epoch's batches."""
    torch.manual_seed(0)
    model = build_model(model_name, data.n_users, data.n_items)
    optimizer = make_optimizer(model, TrainConfig())
    epoch, at = VARIANTS[name](model, optimizer), 0

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


def differences(data, tensors, names: list[str], model_name: str, steps: int = 5) -> dict:
    """Largest parameter difference from autograd's after ``steps`` steps, per variant."""
    params = {}
    for name in names:
        model, run = make_variant(name, data, tensors, 256, model_name)
        run(steps)
        params[name] = [p.detach() for p in model.parameters()]
    return {
        name: max(float((a - b).abs().max()) for a, b in zip(params["autograd"], params[name]))
        for name in names
        if name != "autograd"
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset",
        default="synthetic",
        help="name or path (default: generated MovieLens-1M-shaped data)",
    )
    parser.add_argument("--model", default="neumf", choices=["gmf", "mlp", "neumf", "mf"])
    parser.add_argument("--compiled", action="store_true", help="time torch.compile's step too")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2000, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()

    data = build_dataset(load_ratings(args.dataset), seed=42)
    tensors = list(epoch_arrays(data, 4, np.random.default_rng(0)))
    steps_per_epoch = -(-tensors[0].shape[0] // args.batch_size)
    names = [n for n in VARIANTS if args.compiled or n != "compiled"]
    runs = {
        name: make_variant(name, data, tensors, args.batch_size, args.model)[1] for name in names
    }
    first_call = {}
    for name in names:
        clock = time.perf_counter()
        runs[name](1)  # the compiled step compiles here
        first_call[name] = time.perf_counter() - clock
    diff = differences(data, tensors, names, args.model)
    if diff.get("by hand", 0.0) > 0:
        raise AssertionError(
            f"the hand-written gradients differ by {diff['by hand']} after 5 steps"
        )
    if diff.get("compiled", 0.0) > 1e-4:
        raise AssertionError(f"the compiled step differs by {diff['compiled']} after 5 steps")
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        runs[name](min(200, args.steps))  # warm-up
    for _ in range(args.rounds):
        for name in names:
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
                "first call s": first_call[name],
            }
            for name, t in times.items()
        ]
    )
    text = markdown_table(frame)
    command = "python benchmarks/train_step.py " + " ".join(sys.argv[1:])
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    agree = "; ".join(f"{name} {d:.1e}" for name, d in diff.items())
    note = (
        f"{args.model.upper()} (original settings), batch {args.batch_size}, "
        f"{steps_per_epoch:,} steps per epoch; {args.rounds} rounds of {args.steps:,} steps "
        f"each, in turn; largest parameter difference from autograd after 5 steps: {agree}."
    )
    print(text)
    print(note)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "train-step-" + Path(args.dataset).name.replace(":", "-")
    if args.model != "neumf" or args.compiled:
        name += f"-{args.model}" + ("-compiled" if args.compiled else "")
    (out / f"{name}.md").write_text(
        f"# {name}\n\nCommand: `{command}`\n\nMachine: {machine}\n\n{text}\n\n{note}\n"
    )
    print(f"wrote {out / name}.md")


if __name__ == "__main__":
    main()
