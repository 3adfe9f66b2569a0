"""Top-10 by inner product: exact scoring against FAISS's flat and HNSW indexes.

    python benchmarks/inner_product.py --items 1682 26744 1000000

For each catalogue size: generated item vectors of MF's width at 32 factors (34 numbers:
32 factors, a bias and a one) whose variance lies mostly in 8 directions, as trained
embeddings' does (notebook 10 measures it), and 500 generated users alike. Times one query
at a time (the service's case) for exact scoring (one matrix product and a partial sort,
numpy), FAISS's exact flat index and its HNSW graph (M = 32, efSearch = 128, inner products
turned into distances as :class:`ncf_lib.use.index.FaissIndex` says), the HNSW build, and
HNSW's recall@10 against the exact top 10. Writes ``results/inner-product.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ncf_lib.use.index import ExactIndex, FaissIndex, recall_at_k

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import markdown_table  # noqa: E402


def vectors(n: int, basis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(n, d)`` float32 vectors with most of their variance in ``basis``'s few directions
    (as trained embeddings: see notebook 10), plus a little noise."""
    low = rng.normal(size=(n, basis.shape[0])) @ basis
    return (low + 0.1 * rng.normal(size=low.shape)).astype(np.float32)


def per_query_ms(index, queries: np.ndarray, k: int = 10) -> tuple[float, np.ndarray]:
    found, clock = [], time.perf_counter()
    for q in queries:
        found.append(index.search(q[None, :], k)[1][0])
    return (time.perf_counter() - clock) / len(queries) * 1000, np.array(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", nargs="+", type=int, default=[1682, 26744, 1_000_000])
    parser.add_argument("--dim", type=int, default=34)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(8, args.dim))
    rows = []
    for n in args.items:
        items, users = vectors(n, basis, rng), vectors(args.queries, basis, rng)
        exact_ms, exact = per_query_ms(ExactIndex(items), users)
        flat_ms, flat = per_query_ms(FaissIndex(items, "flat"), users)
        clock = time.perf_counter()
        hnsw_index = FaissIndex(items, "hnsw")
        build = time.perf_counter() - clock
        hnsw_ms, hnsw = per_query_ms(hnsw_index, users)
        rows.append({
            "items": n, "exact ms/query": exact_ms, "FAISS flat ms/query": flat_ms,
            "flat recall@10": recall_at_k(flat, exact), "HNSW build s": build,
            "HNSW ms/query": hnsw_ms, "HNSW recall@10": recall_at_k(hnsw, exact),
        })  # fmt: skip
        print(rows[-1], flush=True)
    out = Path(args.out) / "inner-product.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# Top-10 by inner product: exact against FAISS\n\n"
        f"Command: `python benchmarks/inner_product.py {' '.join(sys.argv[1:])}`  \n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; one query at a time, "
        f"{args.queries} generated users, {args.dim}-wide vectors.\n\n"
        + markdown_table(pd.DataFrame(rows))
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
