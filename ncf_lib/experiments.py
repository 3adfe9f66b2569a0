"""Reproduce the paper's table and studies, with baselines and honest metrics.

A run is one :class:`RunSpec` (model, predictive factors, seed, epochs, negatives, MLP
depth); :func:`run_grid` trains every spec not yet in the results CSV, appending one row per
finished run (so an interrupted grid resumes where it stopped), and
:func:`summary` turns the rows into means and standard deviations over seeds.

Models: ``itempop`` (popularity, no training), ``itemknn`` (cosine item-item neighbours,
their number tuned on the validation items), ``mf`` (matrix factorisation with biases and
L2, Rendle et al. 2020, its L2 weight tuned on the validation items), ``gmf``, ``mlp``,
``neumf`` and ``neumf-pre`` (NeuMF initialised from the GMF and MLP of the same factors and
seed, their weight ``alpha`` chosen on the validation items, then fine-tuned as in the
paper).

Protocol: every hyper-parameter and the number of epochs are chosen on the validation items
(each user's second-latest interaction); selection runs stop early after :data:`PATIENCE`
epochs without a better validation HR@10. With ``refit`` (the main table), the model is then
trained again from scratch on training + validation data for that many epochs, and that
model is tested: the validation interaction is the one closest in time to the test item,
and leaving it out of the final model costs 1-2 points of HR@10. Without ``refit`` (the
studies, to save time) the selection run's model at its chosen epoch is tested. The test
items are never used to choose anything.

Each row holds the sampled metrics (1 held-out + 99 negatives), the full-ranking ones (all
items the user did not train on), HR@1..10, and ``selected_hr@10``, the selection run's own
test HR@10 at its chosen epoch (what is reported without refit).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from queue import Empty

import numpy as np
import pandas as pd
import torch

import matplotlib.pyplot as plt

from ncf_lib.data import NCFData, build_dataset, epoch_arrays
from ncf_lib.metrics import (ItemKNNScorer, PopularityScorer, Scorer, evaluate,
                             full_ranking_metrics, hit_rate, ndcg, rank_of_first,
                             score_candidates, standard_errors)
from ncf_lib.models import ModelConfig, build_model
from ncf_lib.plots import plot_history, plot_hr_at_k, plot_study
from ncf_lib.published import published_ml1m
from ncf_lib.train import (FINETUNE, FitResult, TrainConfig, fit, make_optimizer,
                           pretrained_neumf, seed_everything, train_epoch, train_model)

MODEL_NAMES = ("itempop", "itemknn", "mf", "gmf", "mlp", "neumf", "neumf-pre")
#: Selection runs stop after this many epochs without a better validation HR@10.
PATIENCE = 4
#: L2 weights tried for MF; the one with the best validation HR@10 is kept.
MF_L2_GRID = (0.0, 1e-4, 1e-3)
#: Weights of GMF in pre-trained NeuMF (``alpha``) tried on validation, the paper's first.
ALPHA_GRID = (0.5, 0.3, 0.7)
#: Neighbours tried for ItemKNN; the one with the best validation HR@10 is kept.
KNN_K_GRID = (10, 20, 50, 100, 200, 400)
K = 10


@dataclass(frozen=True)
class RunSpec:
    """One training run of the grid.

    Attributes:
        model: one of :data:`MODEL_NAMES`.
        factors: predictive factors: the width of GMF/MF embeddings and of the MLP's last
            layer. The tower halves layer by layer as in the paper's code: with ``depth``
            hidden layers it is ``[f * 2**depth, ..., 2f, f]``, the first entry being the
            concatenated embeddings (depth 3: ``[8f, 4f, 2f, f]``, which for f = 8 is the
            seed's ``[64, 32, 16, 8]`` and for f = 32 guoyang9/NCF's tower).
        seed: seeds the model and the negatives (the split is fixed by the dataset's seed).
        epochs: training epochs (each stage of ``neumf-pre``).
        num_ng: training negatives per positive.
        depth: hidden layers of the MLP tower.
        study: which study the run belongs to (``main``, ``factors``, ``negatives``, ``depth``).
        refit: re-train on training + validation data for the chosen number of epochs.
    """

    model: str
    factors: int = 32
    seed: int = 0
    epochs: int = 20
    num_ng: int = 4
    depth: int = 3
    study: str = "main"
    refit: bool = False

    @property
    def key(self) -> str:
        return (f"{self.study}|{self.model}|f{self.factors}|s{self.seed}|e{self.epochs}"
                f"|ng{self.num_ng}|d{self.depth}|r{int(self.refit)}")

    def model_config(self) -> ModelConfig:
        f, d = self.factors, self.depth
        return ModelConfig(factor_num=f, layers=tuple(f * 2 ** (d - i) for i in range(d + 1)))

    def train_config(self, **changes) -> TrainConfig:
        return TrainConfig(**{"epochs": self.epochs, "seed": self.seed, "num_ng": self.num_ng,
                              "patience": PATIENCE, "progress": False, **changes})


def paper_grid(seeds: Iterable[int] = (0, 1, 2), epochs: int = 20, study_epochs: int = 10,
               factors: Iterable[int] = (8, 16, 32, 64),
               negatives: Iterable[int] = (1, 2, 4, 6, 8, 10),
               depths: Iterable[int] = (0, 1, 2, 3, 4), study_factors: int = 16
               ) -> list[RunSpec]:
    """The runs behind the results table and the paper's studies.

    * main: every model at 32 factors, each seed, ``epochs`` epochs, re-trained on
      training + validation data (``refit``);
    * factors: every model but ItemKNN at each factor count, first seed, ``study_epochs``,
      no refit (its own 32-factor runs, so the whole curve follows one protocol);
    * negatives: NeuMF with 1..10 training negatives, first seed, ``study_epochs``;
    * depth: MLP with 0..4 hidden layers, first seed, ``study_epochs``.

    The negatives and depth studies use ``study_factors`` predictive factors (16, as the
    paper's Figure 7; the depth-4 tower is then [256, 128, 64, 32, 16]).
    """
    seeds = list(seeds)
    specs = [RunSpec(m, 32, s, epochs, refit=True) for s in seeds for m in MODEL_NAMES]
    specs += [RunSpec(m, f, seeds[0], study_epochs, study="factors")
              for f in factors for m in MODEL_NAMES if m != "itemknn"]  # no factors in kNN
    specs += [RunSpec("neumf", study_factors, seeds[0], study_epochs, num_ng=n,
                      study="negatives") for n in negatives]
    specs += [RunSpec("mlp", study_factors, seeds[0], study_epochs, depth=d, study="depth")
              for d in depths]
    return specs


def estimate_seconds(specs: Iterable[RunSpec], data: NCFData, seconds_per_million_rows: float
                     ) -> float:
    """Rough time of a grid: training rows times a measured speed (evaluation ignored)."""
    total = 0.0
    for spec in specs:
        if spec.model in ("itempop", "itemknn"):
            continue
        stages = 3 if spec.model == "neumf-pre" else len(MF_L2_GRID) if spec.model == "mf" else 1
        stages += (3 if spec.model == "neumf-pre" else 1) * spec.refit  # the whole budget
        rows = data.n_train * (1 + spec.num_ng) * spec.epochs * stages
        total += rows / 1e6 * seconds_per_million_rows
    return total


# --------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------


def _metrics_row(scorer: Scorer, data: NCFData) -> dict[str, float]:
    """Test metrics; full ranking excludes the user's training and validation items."""
    ranks = rank_of_first(score_candidates(scorer, data.test))
    row = {f"hr@{k}": hit_rate(ranks, k) for k in range(1, K + 1)}
    row["ndcg@10"] = ndcg(ranks, K)
    se = standard_errors(ranks, K)
    row.update({"hr@10_se": se["hr"], "ndcg@10_se": se["ndcg"]})
    full = full_ranking_metrics(scorer, data, data.test, K, exclude=data.validation)
    row.update({"full_hr@10": full["hr"], "full_ndcg@10": full["ndcg"],
                "full_recall@10": full["recall"]})
    return row


def run_one(spec: RunSpec, data: NCFData, full: NCFData | None = None, *,
            parts: dict | None = None) -> tuple[dict, FitResult | None]:
    """Train and evaluate one spec. Returns its CSV row and the selection run's fit
    (``None`` for ItemPop).

    Args:
        spec: the run.
        data: split with validation items (selection).
        full: the same split without validation (validation items in training), with the
            same test candidates; needed when ``spec.refit``.
        parts: cache of trained GMF and MLP models, so that ``neumf-pre`` reuses the runs of
            the same grid instead of training them again.
    """
    if spec.refit and full is None:
        raise ValueError("refit needs the split without validation (full)")
    clock = time.perf_counter()
    parts = {} if parts is None else parts
    params, result, refit_model, peek = "", None, None, {}
    if spec.model == "itempop":
        scorer = PopularityScorer.fit(full if spec.refit else data)
    elif spec.model == "itemknn":
        k = _best_k(data)
        scorer, params = ItemKNNScorer.fit(full if spec.refit else data, k), f"k={k}"
    elif spec.model == "mf":
        tried = {l2: train_model("mf", data, spec.train_config(l2=l2), spec.model_config())
                 for l2 in MF_L2_GRID}
        best_l2 = max(tried, key=lambda l2: tried[l2].best["val_hr"])
        result, params = tried[best_l2], f"l2={best_l2:g}"
        if spec.refit:
            refit_model, peek = _refit("mf", spec, full, result.best_epoch, l2=best_l2)
    elif spec.model == "neumf-pre":
        gmf, mlp = (_part(name, spec, data, parts)[0] for name in ("gmf", "mlp"))
        alpha = _best_alpha(gmf, mlp, data)  # fit seeds its own generators
        result = fit(pretrained_neumf(gmf, mlp, alpha), data, spec.train_config(**FINETUNE))
        params = f"alpha={alpha:g} {FINETUNE['optimizer']} lr={FINETUNE['lr']:g}"
        if spec.refit:
            gmf, mlp = (_part(name, spec, data, parts, full)[1][0] for name in ("gmf", "mlp"))
            refit_model, peek = _fit_and_peek(pretrained_neumf(gmf, mlp, alpha), full,
                                              spec.train_config(**FINETUNE), result.best_epoch)
    elif spec.model in ("gmf", "mlp"):
        _, refit, result = _part(spec.model, spec, data, parts, full if spec.refit else None)
        refit_model, peek = refit if refit is not None else (None, {})
    else:
        result = train_model(spec.model, data, spec.train_config(), spec.model_config())
        if spec.refit:
            refit_model, peek = _refit(spec.model, spec, full, result.best_epoch)
    if result is not None:
        scorer = (refit_model if refit_model is not None else result.model).eval().score
    tested = full if spec.refit else data
    row = {"key": spec.key, **asdict(spec), "params": params,
           "epoch": 0 if result is None else result.best_epoch,
           "val_hr@10": np.nan if result is None else result.best["val_hr"],
           "selected_hr@10": np.nan if result is None else result.best["test_hr"],
           **_metrics_row(scorer, tested),
           **{f"peek_{k}": peek.get(k, np.nan) for k in ("epoch", "hr@10", "ndcg@10")},
           "seconds": time.perf_counter() - clock}
    return row, result


def _best_alpha(gmf, mlp, data: NCFData) -> float:
    """The pre-training weight of GMF against MLP with the best validation HR@10 before
    fine-tuning (the paper fixes 0.5; the first of :data:`ALPHA_GRID` wins ties)."""
    hr = {a: evaluate(pretrained_neumf(gmf, mlp, a).eval().score, data.validation, K)["hr"]
          for a in ALPHA_GRID}
    return max(ALPHA_GRID, key=lambda a: hr[a])


def _best_k(data: NCFData) -> int:
    """ItemKNN's number of neighbours with the best validation HR@10."""
    grid = [k for k in KNN_K_GRID if k < data.n_items] or [data.n_items - 1]
    every = ItemKNNScorer.fit(data, k=data.n_items)  # one similarity matrix for the grid
    hr = {k: evaluate(every.neighbours(k), data.validation, K)["hr"] for k in grid}
    return max(grid, key=lambda k: hr[k])


def _refit(name: str, spec: RunSpec, full: NCFData, epochs: int, **changes
           ) -> tuple[torch.nn.Module, dict]:
    """A fresh model trained on training + validation data for ``epochs`` epochs, and the
    peeking numbers of the same run (see :func:`_fit_and_peek`)."""
    seed_everything(spec.seed)
    model = build_model(name, full.n_users, full.n_items, spec.model_config())
    return _fit_and_peek(model, full, spec.train_config(**changes), epochs)


def _fit_and_peek(model, full: NCFData, config: TrainConfig, epochs: int
                  ) -> tuple[torch.nn.Module, dict]:
    """Train ``model`` on training + validation data for all ``config.epochs`` epochs,
    testing after each, and return it as it was after ``epochs`` epochs (the number chosen
    on validation: the same weights as a run stopped there) with what picking the epoch on
    the test set would have reported instead, as the paper's code and its ports do:
    ``{"epoch", "hr@10", "ndcg@10"}`` of the first epoch with the best test HR@10."""
    kept: dict[str, torch.Tensor] = {}

    def keep(row: dict) -> None:
        if row["epoch"] == epochs:
            kept.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    result = fit(model, full, replace(config, select_on="test", patience=None), on_epoch=keep)
    if not kept:
        raise ValueError(f"cannot keep epoch {epochs} of a {config.epochs}-epoch run")
    model.load_state_dict(kept)
    return model, {"epoch": result.best_epoch, "hr@10": result.best["test_hr"],
                   "ndcg@10": result.best["test_ndcg"]}


def _part(name: str, spec: RunSpec, data: NCFData, parts: dict, full: NCFData | None = None):
    """``[selection model, (refit model, peeking metrics) or None, selection fit]`` of a GMF
    or MLP, cached."""
    key = (name, spec.factors, spec.seed, spec.epochs, spec.num_ng, spec.depth)
    if key not in parts:
        result = train_model(name, data, replace(spec, model=name).train_config(),
                             spec.model_config())
        parts[key] = [result.model, None, result]
    if full is not None and parts[key][1] is None:
        parts[key][1] = _refit(name, spec, full, parts[key][2].best_epoch)
    return parts[key]


# --------------------------------------------------------------------------------------
# The grid, with resume
# --------------------------------------------------------------------------------------


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


def build_splits(ratings, seed: int = 42) -> tuple[NCFData, NCFData]:
    """The split with validation items (for selection) and the one without (for refits),
    which share their test items and test candidates."""
    data = build_dataset(ratings, seed=seed)
    full = build_dataset(ratings, seed=seed, validation=False)
    if not np.array_equal(data.test.candidates, full.test.candidates):
        raise AssertionError("the two splits must share their test candidates")
    return data, full


def _append(frame: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    return rows if frame.empty else pd.concat([frame, rows], ignore_index=True)


def run_grid(specs: Iterable[RunSpec], data: NCFData, csv_path: str | Path, *,
             full: NCFData | None = None, history_path: str | Path | None = None,
             on_row: Callable[[dict], None] | None = None, jobs: int = 1) -> pd.DataFrame:
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
        raise ValueError(f"jobs must be at least 1, got {jobs}")
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


def _in_turn(specs: list[RunSpec], data: NCFData, full: NCFData | None
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


def _in_workers(specs: list[RunSpec], data: NCFData, full: NCFData | None, jobs: int
                ) -> Iterator[tuple[dict, pd.DataFrame | None]]:
    """Like :func:`_in_turn`, ``jobs`` groups at a time, the longest first (so that no long
    group runs alone at the end); yields rows as workers finish them."""
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:  # a group shares its GMF and MLP (see _part)
        groups.setdefault((spec.factors, spec.seed, spec.epochs, spec.num_ng, spec.depth),
                          []).append(spec)
    order = sorted(groups, reverse=True, key=lambda key: (  # wider models break ties
        estimate_seconds(groups[key], data, 1.0), key[0]))
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(jobs, mp_context=context) as pool:
        queue = manager.Queue()
        futures = [pool.submit(_worker, groups[key], data, full, queue) for key in order]
        for _ in specs:
            while True:
                try:
                    item = queue.get(timeout=0.5)
                    break
                except Empty:
                    failed = [f for f in futures if f.done() and f.exception() is not None]
                    if failed:
                        raise failed[0].exception()
            yield item


def summary(results: pd.DataFrame, study: str = "main",
            metrics: tuple[str, ...] = ("hr@10", "ndcg@10", "full_hr@10", "full_ndcg@10")
            ) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each model in one study."""
    rows = results[results["study"] == study]
    grouped = rows.groupby(["model", "factors"], sort=False)
    table = grouped[list(metrics)].agg(["mean", "std"])
    table.columns = [f"{m} {stat}" for m, stat in table.columns]
    table["runs"] = grouped.size()
    order = {name: i for i, name in enumerate(MODEL_NAMES)}
    return table.reset_index().sort_values(["factors", "model"], key=lambda c: c.map(order)
                                          if c.name == "model" else c, ignore_index=True)


def markdown_summary(table: pd.DataFrame) -> str:
    """``summary`` as a markdown table of ``mean ± std`` cells."""
    metrics = [c[: -len(" mean")] for c in table.columns if c.endswith(" mean")]
    lines = ["| model | factors | " + " | ".join(metrics) + " | runs |",
             "|---|---|" + "---|" * len(metrics) + "---|"]
    for _, row in table.iterrows():
        cells = []
        for m in metrics:
            std, digits = row[f"{m} std"], 1 if "epoch" in m else 3  # epochs: counts
            cells.append(f"{row[f'{m} mean']:.{digits}f}"
                         + ("" if pd.isna(std) else f" ± {std:.{digits}f}"))
        lines.append(f"| {row['model']} | {row['factors']} | " + " | ".join(cells)
                     + f" | {row['runs']} |")
    return "\n".join(lines)


def seconds_per_million_rows(data: NCFData, batches: int = 200, batch_size: int = 256) -> float:
    """Measure NeuMF training speed here (for :func:`estimate_seconds`)."""
    config = TrainConfig(progress=False, batch_size=batch_size)
    model = build_model("neumf", data.n_users, data.n_items)
    optimizer = make_optimizer(model, config)
    rows = [t[: 2 * batches * batch_size] for t in epoch_arrays(data, 4, np.random.default_rng(0))]
    half = batches * batch_size
    train_epoch(model, optimizer, [t[:half] for t in rows], config)  # warm-up
    clock = time.perf_counter()
    train_epoch(model, optimizer, [t[half:] for t in rows], config)
    return (time.perf_counter() - clock) / half * 1e6


def write_report(results: pd.DataFrame, histories: pd.DataFrame, out: str | Path,
                 dataset: str) -> Path:
    """``summary.md`` (tables: ours, mean ± std over seeds, and published ML-1M numbers)
    and the studies' plots as PNG files in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    published = published_ml1m()
    paper = published[published["source"].str.startswith("He et al.")].assign(
        model=lambda t: np.where(t["pretrained"] == "yes", "neumf-pre", t["model"].str.lower()))
    main = results[results["study"] == "main"]
    figures = {"hr_at_k": plot_hr_at_k(main)}
    if (results["study"] == "factors").any():
        figures["factors"] = plot_study(results[results["study"] == "factors"], "factors",
                                        f"Predictive factors ({dataset})", published=paper)
    for study, x in (("negatives", "num_ng"), ("depth", "depth")):
        rows = results[results["study"] == study]
        if len(rows):
            factors = ", ".join(str(f) for f in sorted(rows["factors"].unique()))
            figures[study] = plot_study(rows, x, f"{study.capitalize()} ({dataset}, "
                                                  f"{factors} factors)")
    if len(histories):
        first = main[main["seed"] == main["seed"].min()]
        runs = {row.model: histories[histories["key"] == row.key] for row in first.itertuples()
                if (histories["key"] == row.key).any()}
        figures["curves"] = plot_history(runs, best_epochs={r.model: r.epoch for r in first.itertuples()})
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=110)
        plt.close(fig)
    lines = [f"# Results on {dataset}", "",
             "Test metrics, mean ± std over seeds. Chosen on the validation items: epochs, "
             "MF's L2 weight, ItemKNN's k, pre-trained NeuMF's alpha and fine-tuning epochs "
             "(0: the pre-trained combination as it is; see `params` and `epoch` in "
             "results.csv). The main table's models are then re-trained on training "
             "+ validation data for that many epochs. `hr@10`/`ndcg@10`: the held-out item "
             "among 100 candidates (the paper's protocol); `full_*`: among all items the "
             "user did not train on.", "",
             markdown_summary(summary(results)), ""]
    if "hr@10_se" in main and main["hr@10_se"].notna().any():
        lines += [f"The ± above is the spread over seeds on one fixed test set. A different test "
                  f"set of the same size (or other sampled negatives) moves a model's numbers "
                  f"more: the standard error over test users of one run is about "
                  f"{main['hr@10_se'].mean():.3f} for HR@10 and {main['ndcg@10_se'].mean():.3f} "
                  f"for NDCG@10 (columns `hr@10_se`, `ndcg@10_se`). Differences smaller than "
                  f"that between numbers measured on different test sets are not evidence.", ""]
    if "peek_hr@10" in main and main["peek_hr@10"].notna().any():
        peeking = summary(main[main["peek_hr@10"].notna()],
                          metrics=("hr@10", "peek_hr@10", "ndcg@10", "peek_ndcg@10", "peek_epoch"))
        lines += ["## Had we picked the epoch on the test set", "",
                  "The same re-trained models, continued to the full epoch budget and tested "
                  "after every epoch: `peek_*` is the epoch with the best test HR@10, what the "
                  "paper's code and its ports report (and what the published numbers below "
                  "are), beside the epoch chosen on validation.", "",
                  markdown_summary(peeking), ""]
    lines += ["## Published (MovieLens-1M, best epoch picked on test)", "",
             "| source | model | factors | pre-trained | HR@10 | NDCG@10 | checked |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.source} | {r.model} | {'' if pd.isna(r.factors) else int(r.factors)} | "
              f"{'' if pd.isna(r.pretrained) else r.pretrained} | {r.hr:.3f} | {r.ndcg:.3f} | "
              f"{r.how_checked} |" for r in published.itertuples()]
    lines += ["", *[f"![{name}]({name}.png)" for name in figures]]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path
