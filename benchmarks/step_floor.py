"""How close is one NeuMF training step to what this CPU can do? Three ways to take it.

    python benchmarks/step_floor.py                 # MovieLens-1M-shaped, batch 256
    python benchmarks/step_floor.py --steps 500 --rounds 5

* ``autograd`` (what ``ncf_lib.train`` does): the model's forward, ``BCEWithLogitsLoss``,
  ``loss.backward()``, ``torch.optim.Adam(fused=True)``;
* ``by hand``: the same forward and its backward written out with plain tensor operations
  (no autograd graph), gradients written into the parameters' ``.grad``, the same optimizer;
* ``by hand + kernel``: as ``by hand``, and the fused Adam kernel called directly
  (``torch._fused_adam_``, a private operator) instead of through ``Optimizer.step``.

All three compute the same update: the hand-written gradients are checked against
autograd's before anything is timed. The variants run in turn, ``--rounds`` times each, so
that the machine's noise spreads over all of them; the median is reported. Only for
measuring: ``ncf_lib`` keeps autograd (see benchmarks/README.md for why).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ncf_lib.data import batches, build_dataset, epoch_arrays, load_ratings
from ncf_lib.models import NeuMF, build_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import markdown_table  # noqa: E402


class ByHand:
    """NeuMF's forward and backward for one batch without autograd (no dropout)."""

    def __init__(self, model: NeuMF) -> None:
        self.model = model
        self.params = list(model.parameters())
        for p in self.params:
            p.grad = torch.zeros_like(p)
        self.tables = [model.gmf.user_embedding.weight, model.gmf.item_embedding.weight,
                       model.mlp.user_embedding.weight, model.mlp.item_embedding.weight]
        self.tower = [m for m in model.mlp.tower if isinstance(m, nn.Linear)]

    @torch.no_grad()
    def loss_and_grads(self, users, items, labels) -> torch.Tensor:
        out, f = self.model.output, self.model.config.factor_num
        gu, gi, mu, mi = (t.index_select(0, ids)
                          for t, ids in zip(self.tables, (users, items, users, items)))
        gmf = gu * gi
        acts = [torch.cat([mu, mi], 1)]
        for layer in self.tower:
            acts.append(torch.addmm(layer.bias, acts[-1], layer.weight.t()).relu_())
        x = torch.cat([gmf, acts[-1]], 1)
        logits = torch.addmm(out.bias, x, out.weight.t()).squeeze(1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
        d = (torch.sigmoid(logits) - labels).div_(labels.shape[0]).unsqueeze(1)  # (batch, 1)
        out.weight.grad.copy_(d.t() @ x)
        out.bias.grad.copy_(d.sum(0))
        dx = d @ out.weight
        d_gmf, dh = dx[:, :f], dx[:, f:]
        for k in range(len(self.tower) - 1, -1, -1):
            layer = self.tower[k]
            dh = dh * (acts[k + 1] > 0)
            torch.mm(dh.t(), acts[k], out=layer.weight.grad)
            torch.sum(dh, 0, out=layer.bias.grad)
            dh = dh @ layer.weight
        half = mu.shape[1]
        for table, ids, grad in zip(self.tables, (users, items, users, items),
                                    (d_gmf * gi, d_gmf * gu, dh[:, :half], dh[:, half:])):
            table.grad.zero_().index_add_(0, ids, grad)
        return loss


class KernelAdam:
    """Adam through the fused kernel directly: the same update as ``Adam(fused=True)``."""

    def __init__(self, params: list[torch.Tensor], lr: float = 0.001) -> None:
        self.params, self.lr = params, lr
        self.exp_avgs = [torch.zeros_like(p) for p in params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in params]
        self.step_count = torch.zeros(())
        self.steps = [self.step_count] * len(params)

    def step(self) -> None:
        self.step_count.add_(1)
        torch._fused_adam_(self.params, [p.grad for p in self.params], self.exp_avgs,
                           self.exp_avg_sqs, [], self.steps, lr=self.lr, beta1=0.9,
                           beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False,
                           maximize=False)


def check_gradients(data, tensors) -> float:
    """Largest difference between hand-written and autograd gradients on one batch."""
    torch.manual_seed(0)
    model = build_model("neumf", data.n_users, data.n_items)
    users, items, labels = (t[:256] for t in tensors)
    nn.BCEWithLogitsLoss()(model(users, items), labels).backward()
    expected = [p.grad.clone() for p in model.parameters()]
    ByHand(model).loss_and_grads(users, items, labels)
    return max(float((p.grad - e).abs().max()) for p, e in zip(model.parameters(), expected))


def check_kernel_adam(data, tensors, steps: int = 5) -> float:
    """Largest parameter difference after ``steps`` updates: ``KernelAdam`` against
    ``torch.optim.Adam(fused=True)`` from the same start and batches."""
    models = []
    for kernel in (False, True):
        torch.manual_seed(0)
        model = build_model("neumf", data.n_users, data.n_items)
        by_hand, params = ByHand(model), list(model.parameters())
        optimizer = KernelAdam(params) if kernel else torch.optim.Adam(params, fused=True)
        for users, items, labels in list(batches(*tensors, batch_size=256))[:steps]:
            by_hand.loss_and_grads(users, items, labels)
            optimizer.step()
        models.append(params)
    return max(float((a - b).abs().max()) for a, b in zip(*models))


def make_variant(name: str, data, tensors, batch_size: int):
    """A function running ``n`` training steps of variant ``name`` on a fresh model."""
    torch.manual_seed(0)
    model = build_model("neumf", data.n_users, data.n_items).train()
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001, fused=True)
    by_hand = ByHand(model) if name != "autograd" else None
    kernel = KernelAdam(list(model.parameters())) if name == "by hand + kernel" else None
    stream = iter(())

    def run(n: int) -> None:
        nonlocal stream
        for _ in range(n):
            batch = next(stream, None)
            if batch is None:
                stream = batches(*tensors, batch_size=batch_size)
                batch = next(stream)
            if by_hand is None:
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(*batch[:2]), batch[2]).backward()
            else:
                by_hand.loss_and_grads(*batch)
            (kernel or optimizer).step()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic",
                        help="name or path (default: generated MovieLens-1M-shaped data)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2000, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()

    data = build_dataset(load_ratings(args.dataset), seed=42)
    tensors = list(epoch_arrays(data, 4, np.random.default_rng(0)))
    steps_per_epoch = -(-tensors[0].shape[0] // args.batch_size)
    difference = check_gradients(data, tensors)
    if difference > 1e-6:
        raise AssertionError(f"hand-written gradients differ from autograd's by {difference}")
    kernel_difference = check_kernel_adam(data, tensors)
    if kernel_difference > 0:
        raise AssertionError(f"the kernel's Adam differs from torch.optim's by {kernel_difference}")
    names = ["autograd", "by hand", "by hand + kernel"]
    runs = {name: make_variant(name, data, tensors, args.batch_size) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        runs[name](min(200, args.steps))  # warm-up
    for _ in range(args.rounds):
        for name in names:
            clock = time.perf_counter()
            runs[name](args.steps)
            times[name].append((time.perf_counter() - clock) / args.steps * 1e3)
    import pandas as pd

    base = statistics.median(times["autograd"])
    frame = pd.DataFrame([{
        "step": name, "median ms/step": statistics.median(t),
        "range": f"{min(t):.3f}-{max(t):.3f}", "epoch s (implied)":
        statistics.median(t) * steps_per_epoch / 1e3, "vs autograd": base / statistics.median(t),
    } for name, t in times.items()])
    text = markdown_table(frame)
    command = "python benchmarks/step_floor.py " + " ".join(sys.argv[1:])
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    note = (f"NeuMF (seed settings), batch {args.batch_size}, {steps_per_epoch:,} steps per "
            f"epoch; {args.rounds} rounds of {args.steps:,} steps each, in turn; hand-written "
            f"gradients within {difference:.1e} of autograd's; the kernel's Adam gives the same "
            f"parameters as torch.optim's after 5 steps (difference {kernel_difference:.1e}).")
    print(text)
    print(note)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "step-floor-" + Path(args.dataset).name.replace(":", "-")
    (out / f"{name}.md").write_text(f"# {name}\n\nCommand: `{command}`\n\nMachine: {machine}\n\n"
                                    f"{text}\n\n{note}\n")
    print(f"wrote {out / name}.md")


if __name__ == "__main__":
    main()
