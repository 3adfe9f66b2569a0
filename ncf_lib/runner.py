"""Running a grid of :class:`~ncf_lib.grid.RunSpec`: in turn or in worker processes, with resume.

:func:`run_grid` trains every spec not yet in the results CSV and appends one row per
finished run, so an interrupted grid resumes where it stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from queue import Empty

import pandas as pd
import torch

from ncf_lib.dataset import NCFData
from ncf_lib.errors import ConfigError
from ncf_lib.grid import RunSpec, estimate_seconds, run_one


def read_results(path: str | Path) -> pd.DataFrame:
    """The results CSV, or an empty frame when it does not exist yet."""
    path = Path(path)
    return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["key"])


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _append(frame: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    return rows if frame.empty else pd.concat([frame, rows], ignore_index=True)


def run_grid(
    specs: Iterable[RunSpec],
    data: NCFData,
    csv_path: str | Path,
    *,
    full: NCFData | None = None,
    history_path: str | Path | None = None,
    on_row: Callable[[dict], None] | None = None,
    jobs: int = 1,
) -> pd.DataFrame:
    """Run every spec whose key is not in ``csv_path`` yet; append each row as it finishes.

    ``full`` is the split without validation, for specs with ``refit`` (see
    :func:`build_splits`). Per-epoch histories of the selection runs (loss, validation and
    test HR) go to ``history_path`` when given. Returns all rows.

    ``jobs > 1`` trains that many runs at once in worker processes of one thread each
    (small models use a core far better one per process than two threads per run: on 2
    cores the MovieLens-100K grid takes about half the time). Runs that share their GMF
    and MLP (``neumf-pre``) go to the same worker. Only this process writes the files.
    One thread instead of several can change the last digits of a run (floating-point
    sums in another order), so compare numbers obtained with the same ``jobs``.
    """
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}")
    csv_path = Path(csv_path)
    done = read_results(csv_path)
    finished = set(done["key"])
    histories = read_results(history_path) if history_path else None
    todo = [spec for spec in dict.fromkeys(specs) if spec.key not in finished]
    runs = _in_workers(todo, data, full, jobs) if jobs > 1 else _in_turn(todo, data, full)
    for row, history in runs:
        done = _append(done, pd.DataFrame([row]))
        _write_atomic(done, csv_path)
        if history_path and history is not None:
            histories = _append(histories, history.assign(key=row["key"]))
            _write_atomic(histories, Path(history_path))
        if on_row is not None:
            on_row(row)
    return done


def _in_turn(
    specs: list[RunSpec], data: NCFData, full: NCFData | None
) -> Iterator[tuple[dict, pd.DataFrame | None]]:
    """``(row, selection history)`` of each spec, one after the other."""
    parts: dict = {}
    for spec in specs:
        row, result = run_one(spec, data, full, parts=parts)
        yield row, None if result is None else result.history


def _worker(specs: list[RunSpec], data: NCFData, full: NCFData | None, queue) -> None:
    torch.set_num_threads(1)
    for item in _in_turn(specs, data, full):
        queue.put(item)


def _in_workers(
    specs: list[RunSpec], data: NCFData, full: NCFData | None, jobs: int
) -> Iterator[tuple[dict, pd.DataFrame | None]]:
    """Like :func:`_in_turn`, ``jobs`` groups at a time, the longest first (so that no long
    group runs alone at the end); yields rows as workers finish them."""
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:  # a group shares its GMF and MLP (see _part)
        groups.setdefault(
            (spec.factors, spec.seed, spec.epochs, spec.num_ng, spec.depth), []
        ).append(spec)
    order = sorted(
        groups,
        reverse=True,
        key=lambda key: (  # wider models break ties
            estimate_seconds(groups[key], data, 1.0),
            key[0],
        ),
    )
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(jobs, mp_context=context) as pool:
        queue = manager.Queue()
        futures = [pool.submit(_worker, groups[key], data, full, queue) for key in order]
        for _ in specs:
            yield _next_row(queue, futures)


def _next_row(queue, futures) -> tuple[dict, pd.DataFrame | None]:
    """The next finished run from the workers' queue; a worker's error (with its traceback)
    as soon as it fails, instead of waiting for a row that will not come."""
    while True:
        try:
            return queue.get(timeout=0.5)
        except Empty:
            failed = [f for f in futures if f.done() and f.exception() is not None]
        if failed:
            raise failed[0].exception()
