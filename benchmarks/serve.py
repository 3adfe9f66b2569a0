"""The recommendation service under load: latency and throughput at several concurrencies.

    python benchmarks/serve.py --dataset ../shared/data/ml-100k synthetic --models neumf gmf

For each dataset and model: trains one epoch (the weights do not change the work a request
does; ``--untrained`` saves the model as initialised instead, for shapes such as
``synthetic:138493x26744x20000263`` where an epoch takes many minutes), starts ``python -m
ncf_lib serve`` on a free port of 127.0.0.1, and sends a fixed number of requests from
``--clients`` concurrent clients (httpx, in this process): known users' top 10
(``GET /users/ID/recommendations``) and new users' from three liked movies
(``POST /recommendations``, folded in). Reports p50 / p99 latency, requests per second,
failed requests, the CPU time per request of the server and of the load generator, and the
server's resident memory after each level, after the first 100 requests and after
``--memory-requests`` requests. The load generator shares the machine's cores with the
server: where its CPU time per request exceeds the server's, it is the load generator that
limits the rate. Writes ``results/serve-LABEL.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from ncf_lib.checkpoints import save_checkpoint
from ncf_lib.dataset import build_dataset
from ncf_lib.models import build_model
from ncf_lib.ratings import load_ratings
from ncf_lib.scale.candidates import large_catalogue_candidates
from ncf_lib.study.report import dataset_label

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import markdown_table  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _load(
    url: str, requests: list[tuple[str, str, dict | None]], clients: int, server_pid: int
) -> dict:
    """Send ``requests`` ``(method, path, json)`` from ``clients`` concurrent clients."""
    latencies, failed = [], 0
    queue = list(reversed(requests))

    async def client(session: httpx.AsyncClient) -> None:
        nonlocal failed
        while queue:
            method, path, body = queue.pop()
            clock = time.perf_counter()
            response = await session.request(method, url + path, json=body)
            latencies.append(time.perf_counter() - clock)
            failed += response.status_code != 200

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as session:
        clock, cpu = time.perf_counter(), (_cpu_seconds(server_pid), time.process_time())
        await asyncio.gather(*(client(session) for _ in range(clients)))
        seconds = time.perf_counter() - clock
        server_cpu = _cpu_seconds(server_pid) - cpu[0]
        client_cpu = time.process_time() - cpu[1]
    ms = np.array(latencies) * 1000
    return {
        "requests": len(requests),
        "p50 ms": float(np.percentile(ms, 50)),
        "p99 ms": float(np.percentile(ms, 99)),
        "requests/s": len(requests) / seconds,
        "failed": failed,
        "server CPU ms/request": server_cpu / len(requests) * 1000,
        "load generator CPU ms/request": client_cpu / len(requests) * 1000,
    }


def _requests(kind: str, n: int, users: int, items: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    if kind == "known user":
        return [
            ("GET", f"users/{u}/recommendations?k=10", None) for u in rng.integers(1, users + 1, n)
        ]
    liked = rng.integers(1, items + 1, (n, 3))
    return [("POST", "recommendations", {"liked": [str(i) for i in row], "k": 10}) for row in liked]


def _checkpoint(dataset: str, model: str, folder: Path, untrained: bool) -> Path:
    if untrained:
        data = build_dataset(load_ratings(dataset), draw=large_catalogue_candidates)
        net = build_model(model, data.n_users, data.n_items)
        path = folder / f"{dataset_label(dataset)}-{model}.pt"
        return save_checkpoint(path, net, data, {}, epoch=0, metrics={})
    subprocess.run(
        [sys.executable, "-m", "ncf_lib", "train", "--dataset", dataset, "--model", model,
         "--epochs", "1", "--no-progress", "--no-log", "--out", str(folder)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return next(folder.glob(f"*-{model}.pt"))


def bench_one(dataset: str, model: str, args, folder: Path) -> list[dict]:
    ckpt = _checkpoint(dataset, model, folder / model, args.untrained)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ncf_lib", "serve", str(ckpt), "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:  # loading a MovieLens-20M-shaped dataset takes minutes
            if server.poll() is not None:
                raise SystemExit(f"the server stopped with exit status {server.returncode}")
            try:
                health = httpx.get(url + "health", timeout=2).json()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        users, items = health["users"], health["items"]
        rows = []
        warm = _requests("known user", 90, users, items, 1) + _requests("new user", 10, 0, items, 1)
        asyncio.run(_load(url, warm, 8, server.pid))  # first requests pay one-off costs
        memory = {"after 100": _rss_mb(server.pid)}
        for kind in ("known user", "new user"):
            n = args.requests if kind == "known user" else args.new_user_requests
            for clients in args.clients:
                load = _requests(kind, n, users, items, clients)
                result = asyncio.run(_load(url, load, clients, server.pid))
                rows.append({"dataset": dataset_label(dataset), "model": model, "request": kind,
                             "clients": clients, **result,
                             "RSS MB after this level": _rss_mb(server.pid)})  # fmt: skip
                print(rows[-1], flush=True)
        done = sum(r["requests"] for r in rows) + 100
        more = _requests("known user", max(0, args.memory_requests - done), users, items, 7)
        asyncio.run(_load(url, more, 8, server.pid))
        memory[f"after {max(done, args.memory_requests):,}"] = _rss_mb(server.pid)
        for row in rows:
            row.update({f"RSS MB {k}": v for k, v in memory.items()})
        return rows
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", nargs="+", default=["ml-100k", "synthetic"])
    parser.add_argument("--models", nargs="+", default=["neumf", "gmf"])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=2000, help="known-user requests per level")
    parser.add_argument("--new-user-requests", type=int, default=200)
    parser.add_argument("--memory-requests", type=int, default=10_000)
    parser.add_argument(
        "--untrained", action="store_true", help="serve models as initialised (large shapes)"
    )
    parser.add_argument("--label", default="")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.dataset:
            for model in args.models:
                rows += bench_one(dataset, model, args, Path(tmp) / dataset_label(dataset))
    frame = pd.DataFrame(rows)
    label = args.label or "-".join(dataset_label(d) for d in args.dataset)
    out = Path(args.out) / f"serve-{label}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        f"# The service under load ({label})\n\n"
        f"Command: `python benchmarks/serve.py {' '.join(sys.argv[1:])}`  \n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; the load generator runs on "
        "the same cores as the server (one uvicorn worker).\n\n"
        + markdown_table(frame.round(2))
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
