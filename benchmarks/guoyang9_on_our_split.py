"""guoyang9/NCF's models and protocol on ncf_lib's split: the reference, paired with ours.

    git clone https://github.com/guoyang9/NCF ../guoyang9-NCF      # not part of this project
    python benchmarks/guoyang9_on_our_split.py --ncf-repo ../guoyang9-NCF \\
        --dataset ../shared/data/ml-100k

The references quoted in the README were measured on their own split and their own test
negatives, so their gap to our numbers mixes two things: the implementations and the test
set (whose standard error on MovieLens-100K is larger than any gap). This script removes
the second: it imports ``NCF`` from the ``model.py`` of a clone of guoyang9/NCF (its code is
not copied here) and trains it as that repository's ``main.py`` does, on our training data
without validation items (what our re-fitted models train on) and scored on our test
candidates:

* GMF, MLP and NeuMF ("NeuMF-end"): 32 factors, 3 layers, no dropout, Adam lr 0.001,
  batch 256, ``BCEWithLogitsLoss``, 4 negatives per positive drawn afresh every epoch;
* NeuMF with pre-training ("NeuMF-pre"): from the GMF and MLP of the same seed, SGD lr 0.001;
* each evaluated on the test items after every epoch and **reported at its best test
  epoch**, the pre-trained NeuMF starting from the best-test-epoch GMF and MLP: the
  reference's own protocol.

What differs from its ``main.py``: the epoch's rows come from ``ncf_lib.sampling.epoch_arrays``
(the same distribution, drawn in one vectorised call instead of a per-sample ``Dataset``,
and seeded), and ranks count ties against the held-out item (``torch.topk`` leaves them to
the sort; with float scores ties do not occur).
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ncf_lib.dataset import NCFData
from ncf_lib.metrics import (
    hit_rate,
    ndcg,
    rank_of_first,
    score_candidates,
    standard_errors,
)
from ncf_lib.ratings import load_ratings
from ncf_lib.sampling import batches, epoch_arrays
from ncf_lib.study.grid import build_splits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import markdown_table  # noqa: E402

#: guoyang9/NCF's model names, in training order (NeuMF-pre needs the first two).
MODELS = ("GMF", "MLP", "NeuMF-end", "NeuMF-pre")


def load_reference(repo: str | Path) -> type[nn.Module]:
    """The ``NCF`` class of a guoyang9/NCF checkout's ``model.py``."""
    path = Path(repo) / "model.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: --ncf-repo must be a clone of https://github.com/guoyang9/NCF"
        )
    spec = importlib.util.spec_from_file_location("guoyang9_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "NCF"):
        raise AttributeError(f"{path} defines no NCF class")
    return module.NCF


def reference_version(repo: str | Path) -> str:
    """The checkout's commit, for the report (``unknown`` outside a git checkout)."""
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else "unknown (not a git checkout)"


def metrics_on_test(model: nn.Module, data: NCFData) -> tuple[float, float, float]:
    """HR@10, NDCG@10 and the HR@10 standard error on the test candidates."""
    model.eval()

    def scorer(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        n, c = items.shape
        return model(users.repeat_interleave(c), items.reshape(-1)).view(n, c)

    ranks = rank_of_first(score_candidates(scorer, data.test))
    return hit_rate(ranks, 10), ndcg(ranks, 10), standard_errors(ranks, 10)["hr"]


def train_reference(
    ncf: type[nn.Module],
    kind: str,
    data: NCFData,
    *,
    seed: int,
    epochs: int,
    factors: int,
    gmf: nn.Module | None = None,
    mlp: nn.Module | None = None,
) -> tuple[nn.Module, dict]:
    """Train one model as guoyang9/NCF's ``main.py`` does; return it at its best test epoch
    (ties keep the earlier epoch) and that epoch's row."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ncf(data.n_users, data.n_items, factors, 3, 0.0, kind, gmf, mlp)
    optimizer = (
        torch.optim.SGD(model.parameters(), lr=0.001)
        if kind == "NeuMF-pre"
        else torch.optim.Adam(model.parameters(), lr=0.001)
    )
    loss_fn = nn.BCEWithLogitsLoss()
    best, state, clock = None, None, time.perf_counter()
    for epoch in range(epochs):
        model.train()
        for users, items, labels in batches(*epoch_arrays(data, 4, rng), batch_size=256):
            model.zero_grad()
            loss_fn(model(users, items), labels).backward()
            optimizer.step()
        hr, gain, se = metrics_on_test(model, data)  # scored under inference_mode
        if best is None or hr > best["HR@10"]:
            best = {
                "model": kind,
                "seed": seed,
                "best test epoch": epoch,
                "HR@10": hr,
                "NDCG@10": gain,
                "HR@10 SE": se,
            }
            state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    best["seconds"] = time.perf_counter() - clock
    return model, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ncf-repo", required=True, help="a clone of guoyang9/NCF")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()

    ncf = load_reference(args.ncf_repo)
    _, full = build_splits(load_ratings(args.dataset, progress=False), seed=42)
    rows = []
    for seed in args.seeds:
        trained: dict[str, nn.Module] = {}
        for kind in MODELS:
            pre = {"gmf": trained["GMF"], "mlp": trained["MLP"]} if kind == "NeuMF-pre" else {}
            trained[kind], row = train_reference(
                ncf, kind, full, seed=seed, epochs=args.epochs, factors=args.factors, **pre
            )
            rows.append(row)
            print(
                {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True
            )
    runs = pd.DataFrame(rows)
    table = (
        runs.groupby("model", sort=False)
        .agg(
            **{
                "HR@10": ("HR@10", "mean"),
                "HR std": ("HR@10", "std"),
                "NDCG@10": ("NDCG@10", "mean"),
                "NDCG std": ("NDCG@10", "std"),
                "best test epochs": ("best test epoch", lambda e: " ".join(map(str, e))),
                "HR@10 SE": ("HR@10 SE", "mean"),
                "runs": ("seed", "size"),
            }
        )
        .reset_index()
    )
    text = markdown_table(table)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"guoyang9-on-our-split-{Path(args.dataset).name.replace(':', '-')}.md"
    command = "python benchmarks/guoyang9_on_our_split.py " + " ".join(sys.argv[1:])
    (out / name).write_text(
        f"# guoyang9/NCF on ncf_lib's split ({full.name})\n\n"
        f"Command: `{command}`  \n"
        f"Reference: `model.py` of guoyang9/NCF at commit {reference_version(args.ncf_repo)}  \n"
        f"Machine: {platform.machine()}, torch {torch.__version__}; test metrics at each "
        f"run's best **test** epoch (the reference's protocol), mean and std over seeds "
        f"{' '.join(map(str, args.seeds))}.\n\n{text}\n"
    )
    print(f"written: {out / name}")


if __name__ == "__main__":
    main()
