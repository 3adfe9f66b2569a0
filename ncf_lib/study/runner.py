"""Running a grid of :class:`~ncf_lib.study.grid.RunSpec`: in turn or in worker processes,
with resume.

:func:`run_grid` trains every spec not yet in the results CSV and appends one row per
finished run, so an interrupted grid resumes where it stopped; :func:`reproduce` is the
whole of ``python -m ncf_lib reproduce``: the paper's grid, its estimated time, the runs and
the report.
"""

from __future__ import annotations

import fcntl
import hashlib
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from queue import Empty

import numpy as np
import pandas as pd
import torch

from ncf_lib.dataset import NCFData
from ncf_lib.errors import ConfigError
from ncf_lib.files import atomic_write, check_writable, exclusive_lock
from ncf_lib.ratings import DataFormatError, Ratings
from ncf_lib.study import grid, report
from ncf_lib.study.grid import CLOSED_FORM, RunSpec, estimate_seconds, run_one


def read_results(path: str | Path) -> pd.DataFrame:
    """A results or history CSV as it is on disk, or an empty frame when it does not exist.

    Raises:
        DataFormatError: the file exists but is not a readable CSV (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=["key"])
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataFormatError(
            f"{path}: not a readable results CSV ({reason}); move it away to start afresh"
        ) from None
    if "key" not in frame.columns:
        raise DataFormatError(f"{path}: no 'key' column; not a results CSV of run_grid")
    return frame


#: The file of each test user's ranks beside ``results.csv`` (:data:`RANK_COLUMNS`).
RANKS = "ranks.csv.gz"
#: Its columns: the user's original id, the held-out item's 0-based rank among the sampled
#: candidates and among every item the user did not train on, the run's key.
RANK_COLUMNS = ("user_id", "rank", "full_rank", "key")

#: Columns every finished row must hold as finite numbers.
REQUIRED = ("hr@10", "ndcg@10", "full_hr@10", "full_ndcg@10", "seconds")


def _spec_key(row: pd.Series) -> str | None:
    """The key a row's own fields give, or ``None`` when a field is missing or not a number."""
    try:
        return RunSpec(
            str(row["model"]),
            int(row["factors"]),
            int(row["seed"]),
            int(row["epochs"]),
            int(row["num_ng"]),
            int(row["depth"]),
            str(row["study"]),
            str(row["refit"]).strip().lower() in ("true", "1"),
        ).key
    except (KeyError, TypeError, ValueError):
        return None


def finished_rows(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """The complete rows of a results CSV, and a note for each row that is not.

    A row counts as finished when its key is the one its own fields give and every
    :data:`REQUIRED` column is a finite number; a row cut short by an interruption, a
    damaged key or a second copy of a key is left out (and so trained again by
    :func:`run_grid`). Notes name the file and the line.
    """
    frame = read_results(path)
    if frame.empty:
        return frame, []
    metrics = frame.reindex(columns=list(REQUIRED)).apply(pd.to_numeric, errors="coerce")
    complete = np.isfinite(metrics.to_numpy(dtype=float)).all(axis=1)
    keys = frame.apply(_spec_key, axis=1) if len(frame.columns) > 1 else pd.Series(None)
    matches = (keys == frame["key"].astype(str)).to_numpy()
    first = ~frame["key"].duplicated().to_numpy()
    keep = complete & matches & first
    notes = []
    for line, (key, ok_metrics, ok_key, ok_first) in enumerate(
        zip(frame["key"], complete, matches, first), start=2
    ):
        if not ok_metrics:
            notes.append(f"{path}: line {line} ({str(key)[:40]}) is incomplete; re-run")
        elif not ok_key:
            notes.append(f"{path}: line {line} ({str(key)[:40]!r}) has a damaged key; re-run")
        elif not ok_first:
            notes.append(f"{path}: line {line} repeats {key}; the first copy is kept")
    return frame[keep].reset_index(drop=True), notes


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as CSV at ``path``, gzip-compressed (the same bytes for the same rows) when
    ``path`` ends in ``.gz``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    packed = {"method": "gzip", "mtime": 0} if path.suffix == ".gz" else None
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False, compression=packed)


def _append(frame: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    return rows if frame.empty else pd.concat([frame, rows], ignore_index=True)


def run_grid(
    specs: Iterable[RunSpec],
    data: NCFData,
    csv_path: str | Path,
    *,
    full: NCFData | None = None,
    history_path: str | Path | None = None,
    ranks_path: str | Path | None = None,
    on_row: Callable[[dict], None] | None = None,
    jobs: int = 1,
) -> pd.DataFrame:
    """Run every spec whose key is not in ``csv_path`` yet; append each row as it finishes.

    ``full`` is the split without validation, for specs with ``refit`` (see
    :func:`build_splits`). Per-epoch histories of the selection runs (loss, validation and
    test HR) go to ``history_path`` when given, each test user's ranks (:data:`RANK_COLUMNS`,
    for paired comparisons) to ``ranks_path`` (a gzip-compressed CSV); a row whose curve or
    ranks are missing is trained again. Returns all rows.

    ``jobs > 1`` trains that many runs at once in worker processes of one thread each
    (small models use a core far better one per process than two threads per run: on 2
    cores the MovieLens-100K grid takes about half the time). Runs that share their GMF
    and MLP (``neumf-pre``) go to the same worker. Only this process writes the files.
    Several ``run_grid`` processes may share one ``csv_path``: each appends its rows under
    a lock (``.results.csv.lock`` beside it) and skips the specs another is training or
    has finished, so they share the work; the rows of specs still running elsewhere are
    not in the returned frame (the other process adds them). Incomplete or damaged rows
    (see :func:`finished_rows`) are trained again.
    One thread instead of several can change the last digits of a run (floating-point
    sums in another order), so compare numbers obtained with the same ``jobs``.
    """
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}")
    csv_path = Path(csv_path)
    check_writable(csv_path.parent, "results folder")
    lock = _lock_of(csv_path)
    extras = (history_path, ranks_path)
    finished = _finished_keys(csv_path, *extras)
    partial = _finished_keys(csv_path) - finished  # rows whose curve or ranks were lost
    todo = [spec for spec in dict.fromkeys(specs) if spec.key not in finished]
    if jobs > 1:
        runs = _in_workers(todo, data, full, jobs, csv_path, extras)
    else:
        runs = _in_turn(todo, data, full, csv_path, extras)
    for row, history, ranks in runs:
        with exclusive_lock(lock):  # another run_grid may write the same files
            done = finished_rows(csv_path)[0]
            if row["key"] in set(done["key"]) - partial:
                continue  # finished meanwhile by another process
            done = done[done["key"] != row["key"]]
            # first the curve and the ranks: a results row implies both
            for path, frame in ((history_path, history), (ranks_path, ranks)):
                if path and frame is not None:
                    kept = read_results(path)
                    kept = kept[kept["key"] != row["key"]]
                    _write_atomic(_append(kept, frame.assign(key=row["key"])), Path(path))
            _write_atomic(_append(done, pd.DataFrame([row])), csv_path)
        if on_row is not None:
            on_row(row)
    with exclusive_lock(lock):
        return finished_rows(csv_path)[0]


def reproduce(
    ratings: Ratings,
    out: str | Path,
    *,
    seeds: Iterable[int] = (0, 1, 2),
    epochs: int = 20,
    study_epochs: int = 10,
    factors: Iterable[int] = (8, 16, 32, 64),
    only_main: bool = False,
    jobs: int = 1,
    say: Callable[[str], None] = print,
) -> Path:
    """Train the paper's grid (:func:`~ncf_lib.study.grid.paper_grid`; ``only_main``: without
    the studies) on ``ratings`` into ``out`` (resuming what is there), write the report and
    return the path of its ``summary.md``. ``say`` gets the progress lines: the plan, a line
    per finished run, the summary table."""
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    data, full = grid.build_splits(ratings, seed=42)
    out = Path(out)
    specs = grid.paper_grid(seeds, epochs, study_epochs, factors)
    if only_main:
        specs = [s for s in specs if s.study == "main"]
    check_writable(out, "results folder")
    for note in finished_rows(out / "results.csv")[1]:
        say(note)
    done = _finished_keys(out / "results.csv", out / "history.csv", out / RANKS)
    todo = [s for s in specs if s.key not in done]
    speed = grid.seconds_per_million_rows(data)
    minutes = estimate_seconds(todo, data, speed) / 60 / min(jobs, os.cpu_count() or 1)
    say(f"data: {data.name}: {data.n_users:,} users, {data.n_items:,} items")
    say(
        f"{len(todo)} runs to do ({len(specs) - len(todo)} already in {out}/results.csv); "
        f"estimated {minutes:.0f} min of training on this machine"
    )
    results = run_grid(
        todo, data, out / "results.csv", full=full, history_path=out / "history.csv",
        ranks_path=out / RANKS,
        on_row=lambda row: say(_row_line(row)), jobs=jobs,
    )  # fmt: skip
    results = results[results["key"].isin({s.key for s in specs})]
    if len(specs) > len(results):
        say(
            f"{len(specs) - len(results)} runs are being trained by another process into "
            f"{out}; it adds their rows and writes the full report"
        )
    histories, ranks = read_results(out / "history.csv"), read_results(out / RANKS)
    label = report.dataset_label(data.name)
    path = report.write_report(results, histories, out, label, ranks=ranks)
    say(report.markdown_summary(report.summary(results)))
    return path


def _row_line(row: dict) -> str:
    return (
        f"{row['study']:<9} {row['model']:<9} f={row['factors']:<3} seed={row['seed']} "
        f"ng={row['num_ng']} depth={row['depth']}  HR@10 {row['hr@10']:.3f} "
        f"NDCG@10 {row['ndcg@10']:.3f}  corrected HR@10 {row['corrected_hr@10']:.3f}  "
        f"full HR@10 {row['full_hr@10']:.3f}  epoch {row['epoch']}  {row['seconds']:.0f} s"
    )


def _lock_of(csv_path: Path) -> Path:
    return csv_path.with_name(f".{csv_path.name}.lock")


def _finished_keys(
    csv_path: Path, history_path: str | Path | None = None, ranks_path: str | Path | None = None
) -> set[str]:
    """Keys of the finished rows; with ``history_path``, a trained model's row counts only
    with its per-epoch history, with ``ranks_path`` every row only with its users' ranks (a
    stop between the files' writes re-runs it)."""
    with exclusive_lock(_lock_of(csv_path)):
        rows = finished_rows(csv_path)[0]
        if rows.empty:
            return set()
        keep = np.ones(len(rows), dtype=bool)
        if history_path is not None:
            curves = set(read_results(history_path)["key"])
            keep &= (rows["model"].isin(CLOSED_FORM) | rows["key"].isin(curves)).to_numpy()
        if ranks_path is not None:
            keep &= rows["key"].isin(set(read_results(ranks_path)["key"])).to_numpy()
        return set(rows["key"][keep])


def _in_turn(
    specs: list[RunSpec], data: NCFData, full: NCFData | None, csv_path: Path, extras=()
) -> Iterator[tuple[dict, pd.DataFrame | None, pd.DataFrame]]:
    """``(row, selection history, users' ranks)`` of each spec, one after the other; a spec
    that another process is training (its claim) or has finished in ``csv_path`` (with the
    ``extras``: history and ranks paths) is skipped."""
    parts: dict = {}
    claims = csv_path.with_name(f".{csv_path.name}.claims")
    for spec in specs:
        with _claim(claims, spec.key) as mine:  # held until the caller has written the row
            if not mine or spec.key in _finished_keys(csv_path, *extras):
                continue
            row, result, ranks = run_one(spec, data, full, parts=parts)
            yield row, None if result is None else result.history, ranks


def _worker(
    specs: list[RunSpec], data: NCFData, full: NCFData | None, csv_path: Path, extras, queue
) -> None:
    torch.set_num_threads(1)
    for item in _in_turn(specs, data, full, csv_path, extras):
        queue.put(item)
    queue.put(None)  # this worker is done


def _in_workers(
    specs: list[RunSpec],
    data: NCFData,
    full: NCFData | None,
    jobs: int,
    csv_path: Path,
    extras=(),
) -> Iterator[tuple[dict, pd.DataFrame | None, pd.DataFrame]]:
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
        futures = [
            pool.submit(_worker, groups[key], data, full, csv_path, extras, queue) for key in order
        ]
        running = len(futures)
        try:
            while running:  # workers may skip specs finished elsewhere: count the workers
                item = _next_row(queue, futures)
                if item is None:
                    running -= 1
                else:
                    yield item
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop the workers now, not after their runs
            for child in multiprocessing.active_children():
                child.terminate()
            raise


def _next_row(queue, futures) -> tuple[dict, pd.DataFrame | None, pd.DataFrame] | None:
    """The next finished run from the workers' queue; a worker's error (with its traceback)
    as soon as it fails, instead of waiting for a row that will not come."""
    while True:
        try:
            return queue.get(timeout=0.5)
        except Empty:
            failed = [f for f in futures if f.done() and f.exception() is not None]
        if failed:
            raise failed[0].exception()


@contextmanager
def _claim(path: str | Path, key: str) -> Iterator[bool]:
    """Try to claim ``key`` among the processes sharing ``path``, without waiting.

    Yields ``True`` while this process holds the claim, ``False`` when another one does
    (so work can be shared: each process takes what nobody holds). A claim is a lock on
    one byte of ``path`` chosen by ``key``'s hash, and ends with the block or the process.
    """
    offset = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")
    with open(path, "a+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
            held = True
        except (BlockingIOError, PermissionError):
            held = False
        try:
            yield held
        finally:
            if held:
                fcntl.lockf(handle, fcntl.LOCK_UN, 1, offset)
