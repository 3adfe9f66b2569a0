"""The CUDA code paths, checked and timed in one call: ``make gpu-check``.

    python benchmarks/gpu_check.py                 # on a machine with a CUDA GPU
    python benchmarks/gpu_check.py --device cpu    # the same checks on the CPU (gloo)

Needs PyTorch with CUDA, numpy, pandas and tqdm, nothing else (no network, no pip;
tensorboardX is not used): it imports ``ncf_lib`` from this checkout. Checks, each printed
as ``ok`` or ``FAILED`` with its numbers:

1. the device sampler (:class:`ncf_lib.scale.sampler.TorchSampler`): an epoch's shape, labels,
   and that no negative is a training positive;
2. training GMF and NeuMF for 2 epochs on the device: finite losses, HR@10 above random;
3. evaluation on the device equals evaluation of the same weights on the CPU (sampled
   and full ranking);
4. DDP: ``torchrun --nproc-per-node 1`` training through the distributed path (``nccl`` on
   CUDA, ``gloo`` on the CPU), finishing with a checkpoint;
5. one timed NeuMF epoch on MovieLens-1M-shaped data (skipped with ``--quick``).

Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ncf_lib import scale  # noqa: E402
from ncf_lib.dataset import build_dataset  # noqa: E402
from ncf_lib.metrics import evaluate, full_ranking_metrics  # noqa: E402
from ncf_lib.ratings import load_ratings  # noqa: E402
from ncf_lib.scale.sampler import TorchSampler  # noqa: E402
from ncf_lib.train import TrainConfig, train_model  # noqa: E402

SMALL = "synthetic:600x800x24000"


def check(name: str, ok: bool, detail: str) -> bool:
    print(f"{'ok' if ok else 'FAILED':<7}{name}: {detail}", flush=True)
    return ok


def sampler_check(data, device) -> bool:
    sampler = TorchSampler(data, 4, seed=0, device=device)
    users, items, labels = sampler.epoch()
    keys = set(data.train_keys.tolist())
    negatives = (users[labels == 0] * data.n_items + items[labels == 0]).cpu().tolist()
    ok = (
        users.device.type == device.type
        and users.numel() == data.n_train * 5
        and int(labels.sum()) == data.n_train
        and not keys.intersection(negatives)
    )
    return check("device sampler", ok, f"{users.numel():,} rows on {users.device}")


def training_check(data, device) -> bool:
    ok = True
    for name in ("gmf", "neumf"):
        config = TrainConfig(epochs=2, device=device.type, progress=False, select_on="last")
        clock = time.perf_counter()
        result = train_model(name, data, config, **scale.fit_options(config)[1])
        seconds = time.perf_counter() - clock
        losses = result.history["loss"].dropna()
        hr = result.best["test_hr"]
        ok &= check(
            f"train {name}",
            bool(np.isfinite(losses).all()) and hr > 0.1,
            f"losses {', '.join(f'{x:.4f}' for x in losses)}, test HR@10 {hr:.3f}, {seconds:.1f} s",
        )
        model = result.model
        on_device = evaluate(model.score, data.test, 10, device=device)
        full_device = full_ranking_metrics(model.score, data, data.test, 10, device=device)
        model.cpu()
        on_cpu = evaluate(model.score, data.test, 10)
        full_cpu = full_ranking_metrics(model.score, data, data.test, 10)
        same = all(abs(on_device[k] - on_cpu[k]) < 1e-9 for k in on_device) and all(
            abs(full_device[k] - full_cpu[k]) < 2 / data.test.users.size for k in full_device
        )
        ok &= check(
            f"evaluate {name} on {device.type} = on cpu",
            same,
            f"HR@10 {on_device['hr']:.4f} / {on_cpu['hr']:.4f}, full HR@10 "
            f"{full_device['hr']:.4f} / {full_cpu['hr']:.4f}",
        )
    return ok


def ddp_check(device) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1",
            "--standalone", "-m", "ncf_lib", "train", "--dataset", SMALL,
            "--model", "neumf", "--epochs", "1", "--device", device.type, "--out", tmp,
            "--no-log", "--no-progress",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        clock = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        seconds = time.perf_counter() - clock
        saved = list(Path(tmp).glob("*.pt"))
        backend = "nccl" if device.type == "cuda" else "gloo"
        detail = f"{backend}, rc {done.returncode}, {seconds:.0f} s"
        if done.returncode:
            detail += "\n" + done.stderr[-2000:]
        return check("torchrun, 1 process", done.returncode == 0 and len(saved) == 1, detail)


def epoch_timing(device) -> bool:
    data = build_dataset(load_ratings("synthetic"), seed=42)
    config = TrainConfig(epochs=1, device=device.type, progress=False, select_on="last")
    result = train_model("neumf", data, config, **scale.fit_options(config)[1])
    row = result.history.iloc[-1]
    return check(
        "NeuMF epoch, MovieLens-1M-shaped",
        bool(np.isfinite(row["loss"])),
        f"{data.n_train * 5:,} rows: train {row['train_seconds']:.1f} s, "
        f"evaluation {row['eval_seconds']:.2f} s, test HR@10 {row['test_hr']:.3f}",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--quick", action="store_true", help="skip the timed ML-1M epoch")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: run on a machine with a GPU, or --device cpu", file=sys.stderr)
        return 1
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {name}", flush=True)
    data = build_dataset(load_ratings(SMALL), seed=42)
    results = [sampler_check(data, device), training_check(data, device), ddp_check(device)]
    if not args.quick:
        results.append(epoch_timing(device))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
