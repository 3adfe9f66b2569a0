"""Whole ``python -m ncf_lib train`` processes with each way of computing a step: autograd
(the default), the hand-written gradients (``--engine hand``) and the autograd step under
``torch.compile``, the compiler's cache cold and then warm.

    python benchmarks/engines.py                      # MovieLens-1M-shaped, 1 and 10 epochs
    python benchmarks/engines.py --epochs 1 --dataset ../shared/data/ml-100k

Each run is its own process, timed from its start to its exit (start-up, parsing, split,
training, evaluation, checkpoints), one after the other on the same data. The compiled runs
are the same command with :func:`ncf_lib.scale.fit_options` replaced by one whose ``train_epoch``
is ``benchmarks/train_step.py``'s compiled step; "cold" starts from an empty
``TORCHINDUCTOR_CACHE_DIR``, "warm" reuses the cache the cold run filled. The per-epoch
training seconds come from the epoch lines the command prints (the first epoch of a compiled
run includes its compilation). Prints a table and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import markdown_table  # noqa: E402

HERE = Path(__file__).resolve().parent

#: Run in the child for the compiled engine: the command line with a compiled train_epoch.
COMPILED_CHILD = """
import sys
from unittest import mock
sys.path.insert(0, {here!r})
from train_step import compiled_epoch
from ncf_lib import cli

steps = {{}}

def train_epoch(model, optimizer, batches, *, l2=0.0):
    key = (id(model), id(optimizer))
    if key not in steps:
        steps[key] = compiled_epoch(model, optimizer)
    return steps[key](model, optimizer, batches)

def fit_options(config, **_):
    return config, {{"train_epoch": train_epoch}}

with mock.patch.object(cli.scale, "fit_options", fit_options):
    sys.exit(cli.main(sys.argv[1:]))
"""


def run(engine: str, epochs: int, dataset: str, cache: str | None) -> dict:
    """One whole training process; its wall time and what its epoch lines say."""
    with tempfile.TemporaryDirectory() as out:
        argv = ["train", "--dataset", dataset, "--epochs", str(epochs), "--out", out,
                "--no-log", "--no-progress"]  # fmt: skip
        if engine == "compiled":
            command = [sys.executable, "-c", COMPILED_CHILD.format(here=str(HERE)), *argv]
        else:
            command = [sys.executable, "-m", "ncf_lib", *argv, "--engine", engine]
        env = dict(os.environ)
        if cache is not None:
            env["TORCHINDUCTOR_CACHE_DIR"] = cache
        clock = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        seconds = time.perf_counter() - clock
    if done.returncode:
        raise SystemExit(f"{engine}: exit {done.returncode}\n{done.stderr[-3000:]}")
    train = [float(s) for s in re.findall(r"train ([\d.]+) s", done.stdout)]
    best = re.search(r"Best epoch (\d+): HR = ([\d.]+)", done.stdout)
    return {
        "process s": seconds,
        "first epoch s": train[0],
        "later epochs s (mean)": sum(train[1:]) / len(train[1:])
        if len(train) > 1
        else float("nan"),
        "best epoch": int(best[1]),
        "test HR@10": float(best[2]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic", help="default: ML-1M-shaped data")
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--engines", nargs="+", default=["autograd", "hand", "compiled"])
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    rows = []
    for epochs in args.epochs:
        for engine in args.engines:
            if engine != "compiled":
                rows.append({"engine": engine, "epochs": epochs, "cache": "",
                             **run(engine, epochs, args.dataset, None)})  # fmt: skip
                print(rows[-1], flush=True)
                continue
            with tempfile.TemporaryDirectory() as cache:
                for state in ("cold", "warm"):
                    rows.append({"engine": engine, "epochs": epochs, "cache": state,
                                 **run(engine, epochs, args.dataset, cache)})  # fmt: skip
                    print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    name = f"engines-{Path(args.dataset).name.replace(':', '_')}"
    text = (
        f"# {name}\n\nCommand: `python benchmarks/engines.py {' '.join(sys.argv[1:])}`\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} threads, torch {torch.__version__}\n\n"
        f"{markdown_table(table)}\n\nSeconds, lower is better. The first epoch of a compiled "
        "run includes its compilation.\n"
    )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
