"""The runs behind the paper's table and studies: what each run is, and how it is trained.

A run is one :class:`RunSpec` (model, predictive factors, seed, epochs, negatives, MLP
depth); :func:`run_one` trains and evaluates one spec and returns its row of results
(:mod:`ncf_lib.study.runner` runs a whole grid with resume, :mod:`ncf_lib.study.report`
summarises it).

Models: ``itempop`` (popularity, no training), ``itemknn`` (cosine item-item neighbours,
their number tuned on the validation items), ``puresvd`` (its rank tuned), ``ease`` (its
L2 weight tuned), ``ials`` (factors, L2 weight and positive weight tuned), ``mf`` (matrix
factorisation with biases and L2, Rendle et al. 2020, its L2 weight tuned on the
validation items), ``gmf``, ``mlp``,
``neumf`` and ``neumf-pre`` (NeuMF initialised from the GMF and MLP of the same factors and
seed, their weight ``alpha`` chosen on the validation items, then fine-tuned as in the
paper), and ``mf-bpr``, ``gmf-bpr``, ``neumf-bpr``: the same models trained with the
pairwise BPR loss (:data:`BPR_MODELS`).

Protocol: every hyper-parameter and the number of epochs are chosen on the validation items
(each user's second-latest interaction); selection runs stop early after :data:`PATIENCE`
epochs without a better validation HR@10. With ``refit`` (the main table), the model is then
trained again from scratch on training + validation data for that many epochs, and that
model is tested: the validation interaction is the one closest in time to the test item,
and leaving it out of the final model costs 1-2 points of HR@10. Without ``refit`` (the
studies, to save time) the selection run's model at its chosen epoch is tested. The test
items are never used to choose anything.

Each row holds the sampled metrics (1 held-out + 99 negatives), their corrected estimates
of the full-ranking metrics (``corrected_*``, :mod:`ncf_lib.study.corrected`), the full-ranking
ones (all items the user did not train on), HR@1..10, and ``selected_hr@10``, the
selection run's own test HR@10 at its chosen epoch (what is reported without refit).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from ncf_lib.dataset import NCFData, build_dataset
from ncf_lib.errors import ConfigError
from ncf_lib.metrics import (
    PopularityScorer,
    Scorer,
    full_ranks,
    hit_rate,
    ndcg,
    rank_of_first,
    score_candidates,
    standard_errors,
)
from ncf_lib.models import ModelConfig, build_model
from ncf_lib.pretraining import finetune_config, pretrain_neumf, pretrained_neumf
from ncf_lib.sampling import batches, epoch_arrays
from ncf_lib.scale.candidates import large_catalogue_candidates
from ncf_lib.study import baselines
from ncf_lib.study.baselines import (
    ItemKNNScorer,
    PureSVD,
    ease,
    ials,
    tune_ease,
    tune_ials,
    tune_itemknn,
    tune_mf,
    tune_puresvd,
)
from ncf_lib.study.corrected import corrected_metrics, pool_sizes
from ncf_lib.study.pairwise import PairSampler, bpr_train_epoch
from ncf_lib.train import (
    FitResult,
    TrainConfig,
    fit,
    make_optimizer,
    seed_everything,
    train_epoch,
    train_model,
)

MODEL_NAMES = (
    "itempop",
    "itemknn",
    "puresvd",
    "ease",
    "ials",
    "mf",
    "gmf",
    "mlp",
    "neumf",
    "neumf-pre",
    "mf-bpr",
    "gmf-bpr",
    "neumf-bpr",
)
#: Models trained with the pairwise BPR loss (:mod:`ncf_lib.study.pairwise`) instead of
#: cross-entropy: one negative per positive per epoch, their learning rate (and MF's L2
#: weight) tuned on validation.
BPR_MODELS = ("mf-bpr", "gmf-bpr", "neumf-bpr")
#: Adam learning rates tried for each BPR model (cross-entropy keeps the paper's 0.001).
BPR_LR_GRID = (0.001, 0.003, 0.01)
#: Models tuned on validation without trained epochs or a factor count of the grid's own.
CLOSED_FORM = ("itempop", "itemknn", "puresvd", "ease", "ials")
#: Selection runs stop after this many epochs without a better validation HR@10.
PATIENCE = 4
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
            original tutorial's ``[64, 32, 16, 8]`` and for f = 32 guoyang9/NCF's tower).
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
        return (
            f"{self.study}|{self.model}|f{self.factors}|s{self.seed}|e{self.epochs}"
            f"|ng{self.num_ng}|d{self.depth}|r{int(self.refit)}"
        )

    def model_config(self) -> ModelConfig:
        f, d = self.factors, self.depth
        return ModelConfig(factor_num=f, layers=tuple(f * 2 ** (d - i) for i in range(d + 1)))

    def train_config(self, **changes) -> TrainConfig:
        return TrainConfig(
            **{
                "epochs": self.epochs,
                "seed": self.seed,
                "num_ng": self.num_ng,
                "patience": PATIENCE,
                "progress": False,
                **changes,
            }
        )


def paper_grid(
    seeds: Iterable[int] = (0, 1, 2),
    epochs: int = 20,
    study_epochs: int = 10,
    factors: Iterable[int] = (8, 16, 32, 64),
    negatives: Iterable[int] = (1, 2, 4, 6, 8, 10),
    depths: Iterable[int] = (0, 1, 2, 3, 4),
    study_factors: int = 16,
) -> list[RunSpec]:
    """The runs behind the results table and the paper's studies.

    * main: every model at 32 factors, each seed, ``epochs`` epochs, re-trained on
      training + validation data (``refit``); the BPR models with one negative;
    * factors: ItemPop, MF and the NCF models at each factor count, first seed,
      ``study_epochs``, no refit (its own 32-factor runs, so the whole curve follows one
      protocol; the other baselines tune their own size);
    * negatives: NeuMF with 1..10 training negatives, first seed, ``study_epochs``;
    * depth: MLP with 0..4 hidden layers, first seed, ``study_epochs``.

    The negatives and depth studies use ``study_factors`` predictive factors (16, as the
    paper's Figure 7; the depth-4 tower is then [256, 128, 64, 32, 16]).
    """
    seeds = list(seeds)
    specs = [
        RunSpec(m, 32, s, epochs, num_ng=1 if m in BPR_MODELS else 4, refit=True)
        for s in seeds
        for m in MODEL_NAMES
    ]
    specs += [
        RunSpec(m, f, seeds[0], study_epochs, study="factors")
        for f in factors
        for m in MODEL_NAMES
        if m == "itempop" or m not in CLOSED_FORM + BPR_MODELS
    ]
    specs += [
        RunSpec("neumf", study_factors, seeds[0], study_epochs, num_ng=n, study="negatives")
        for n in negatives
    ]
    specs += [
        RunSpec("mlp", study_factors, seeds[0], study_epochs, depth=d, study="depth")
        for d in depths
    ]
    return specs


def estimate_seconds(
    specs: Iterable[RunSpec], data: NCFData, seconds_per_million_rows: float
) -> float:
    """Rough time of a grid: training rows times a measured speed (evaluation ignored)."""
    total = 0.0
    for spec in specs:
        if spec.model in CLOSED_FORM:
            continue
        stages = (
            3
            if spec.model == "neumf-pre"
            else len(baselines.MF_L2_GRID)
            if spec.model == "mf"
            else len(_bpr_grid(spec.model))  # n_train triples of two scores: 1 + num_ng rows
            if spec.model in BPR_MODELS
            else 1
        )
        stages += (3 if spec.model == "neumf-pre" else 1) * spec.refit  # the whole budget
        rows = data.n_train * (1 + spec.num_ng) * spec.epochs * stages
        total += rows / 1e6 * seconds_per_million_rows
    return total


def _metrics_row(scorer: Scorer, data: NCFData) -> tuple[dict[str, float], pd.DataFrame]:
    """Test metrics, and each test user's ranks (``user_id``, ``rank``, ``full_rank``); full
    ranking excludes the user's training and validation items."""
    ranks = rank_of_first(score_candidates(scorer, data.test))
    row = {f"hr@{k}": hit_rate(ranks, k) for k in range(1, K + 1)}
    row["ndcg@10"] = ndcg(ranks, K)
    se = standard_errors(ranks, K)
    row.update({"hr@10_se": se["hr"], "ndcg@10_se": se["ndcg"]})
    pools = pool_sizes(data, data.test, exclude=data.validation)
    corrected = corrected_metrics(ranks.numpy(), pools, data.test.candidates.shape[1] - 1, K)
    row.update({"corrected_hr@10": corrected["hr"], "corrected_ndcg@10": corrected["ndcg"]})
    full = full_ranks(scorer, data, data.test, exclude=data.validation)
    row.update(
        {
            "full_hr@10": hit_rate(full, K),
            "full_ndcg@10": ndcg(full, K),
            "full_recall@10": hit_rate(full, K),  # one held-out item: recall is HR
        }
    )
    per_user = pd.DataFrame(
        {
            "user_id": data.user_ids[data.test.users],
            "rank": ranks.numpy().astype(np.int64),
            "full_rank": full.numpy().astype(np.int64),
        }
    )
    return row, per_user


@dataclass
class Trained:
    """What one run's model builder returns: the scorer of a model without trained epochs,
    or the selection fit and, with ``refit``, the refit model and the peeking numbers."""

    scorer: Scorer | None = None
    params: str = ""
    result: FitResult | None = None
    refit: torch.nn.Module | None = None
    peek: dict = field(default_factory=dict)


def run_one(
    spec: RunSpec, data: NCFData, full: NCFData | None = None, *, parts: dict | None = None
) -> tuple[dict, FitResult | None, pd.DataFrame]:
    """Train and evaluate one spec. Returns its CSV row, the selection run's fit (``None``
    for the models without trained epochs) and each test user's ranks (``user_id``,
    ``rank`` among the sampled candidates, ``full_rank`` among all items; 0-based).

    Args:
        spec: the run.
        data: split with validation items (selection).
        full: the same split without validation (validation items in training), with the
            same test candidates; needed when ``spec.refit``.
        parts: cache of trained GMF and MLP models, so that ``neumf-pre`` reuses the runs of
            the same grid instead of training them again.
    """
    if spec.refit and full is None:
        raise ConfigError("refit needs the split without validation (full)")
    clock = time.perf_counter()
    refit_on = full if spec.refit else None
    tested = data if refit_on is None else refit_on  # what the final model is fitted on
    build = BUILDERS.get(spec.model, _trained)
    trained = build(spec, data, refit_on, {} if parts is None else parts)
    result, scorer = trained.result, trained.scorer
    if result is not None:
        scorer = (trained.refit if trained.refit is not None else result.model).eval().score
    metrics, ranks = _metrics_row(scorer, tested)
    row = {
        "key": spec.key,
        **asdict(spec),
        "params": trained.params,
        "epoch": 0 if result is None else result.best_epoch,
        "val_hr@10": np.nan if result is None else result.best["val_hr"],
        "selected_hr@10": np.nan if result is None else result.best["test_hr"],
        **metrics,
        **{f"peek_{k}": trained.peek.get(k, np.nan) for k in ("epoch", "hr@10", "ndcg@10")},
        "seconds": time.perf_counter() - clock,
    }
    return row, result, ranks


# Each builder: (spec, data with validation, the data to refit on or None, the parts' cache);
# a model without trained epochs is fitted on the refit data when given.
def _itempop(spec: RunSpec, data: NCFData, full: NCFData | None, parts: dict) -> Trained:
    return Trained(PopularityScorer.fit(data if full is None else full))


def _itemknn(spec: RunSpec, data: NCFData, full: NCFData | None, parts: dict) -> Trained:
    k = tune_itemknn(data)
    return Trained(ItemKNNScorer.fit(data if full is None else full, k), f"k={k}")


def _puresvd(spec: RunSpec, data: NCFData, full: NCFData | None, parts: dict) -> Trained:
    rank = tune_puresvd(data)
    return Trained(PureSVD.fit(data if full is None else full).rank(rank), f"rank={rank}")


def _ease(spec: RunSpec, data: NCFData, full: NCFData | None, parts: dict) -> Trained:
    l2 = tune_ease(data)
    return Trained(ease(data if full is None else full, l2), f"l2={l2:g}")


def _ials(spec: RunSpec, data: NCFData, full: NCFData | None, parts: dict) -> Trained:
    config = tune_ials(data, seed=spec.seed)
    return Trained(ials(data if full is None else full, config), str(config))


def _mf(spec: RunSpec, data: NCFData, full: NCFData | None, parts: dict) -> Trained:
    l2, result = tune_mf(data, spec.train_config(), spec.model_config())
    trained = Trained(params=f"l2={l2:g}", result=result)
    if full is not None:
        trained.refit, trained.peek = _refit("mf", spec, full, result.best_epoch, l2=l2)
    return trained


def _gmf_or_mlp(spec: RunSpec, data: NCFData, full: NCFData | None, parts: dict) -> Trained:
    part = _part(spec.model, spec, data, parts, full)
    refit, peek = part.refit if part.refit is not None else (None, {})
    return Trained(result=part.result, refit=refit, peek=peek)


def _neumf_pre(spec: RunSpec, data: NCFData, full: NCFData | None, parts: dict) -> Trained:
    gmf, mlp = (_part(name, spec, data, parts).result.model for name in ("gmf", "mlp"))
    pre = pretrain_neumf(
        data, spec.train_config(), spec.model_config(), alpha=None, gmf=gmf, mlp=mlp
    )
    config = finetune_config(spec.train_config())
    params = f"alpha={pre.alpha:g} {config.optimizer} lr={config.lr:g}"
    trained = Trained(params=params, result=pre.neumf)
    if full is not None:
        gmf, mlp = (_part(name, spec, data, parts, full).refit[0] for name in ("gmf", "mlp"))
        neumf = pretrained_neumf(gmf, mlp, pre.alpha)
        trained.refit, trained.peek = _fit_and_peek(neumf, full, config, pre.neumf.best_epoch)
    return trained


def _bpr_grid(name: str) -> list[dict]:
    """The settings a BPR model is tuned over: learning rates (and MF's L2 weights)."""
    l2s = baselines.MF_L2_GRID if name == "mf-bpr" else (0.0,)
    return [{"lr": lr, "l2": l2} for lr in BPR_LR_GRID for l2 in l2s]


def _bpr(spec: RunSpec, data: NCFData, full: NCFData | None, parts: dict) -> Trained:
    """A model trained with the BPR loss, once per setting of :func:`_bpr_grid`; the one
    with the best validation HR@10 (the first wins ties)."""
    name, options = spec.model.removesuffix("-bpr"), pairwise_options()
    settings = _bpr_grid(spec.model)
    fits = [
        train_model(name, data, spec.train_config(**s), spec.model_config(), **options)
        for s in settings
    ]
    best = max(range(len(fits)), key=lambda i: fits[i].best["val_hr"])
    chosen, result = settings[best], fits[best]
    params = f"lr={chosen['lr']:g}" + (f" l2={chosen['l2']:g}" if name == "mf" else "")
    trained = Trained(params=params, result=result)
    if full is not None:
        trained.refit, trained.peek = _refit(
            name, spec, full, result.best_epoch, options=options, **chosen
        )
    return trained


def pairwise_options() -> dict:
    """``fit``'s keyword arguments that train with the BPR loss."""
    return {"make_sampler": PairSampler, "train_epoch": bpr_train_epoch}


def _trained(spec: RunSpec, data: NCFData, full: NCFData | None, parts: dict) -> Trained:
    """A model of :mod:`ncf_lib.models` trained as it is (NeuMF without pre-training)."""
    result = train_model(spec.model, data, spec.train_config(), spec.model_config())
    trained = Trained(result=result)
    if full is not None:
        trained.refit, trained.peek = _refit(spec.model, spec, full, result.best_epoch)
    return trained


#: How :func:`run_one` builds each model of the grid (any other: :func:`_trained`).
BUILDERS = {
    "itempop": _itempop,
    "itemknn": _itemknn,
    "puresvd": _puresvd,
    "ease": _ease,
    "ials": _ials,
    "mf": _mf,
    "gmf": _gmf_or_mlp,
    "mlp": _gmf_or_mlp,
    "neumf-pre": _neumf_pre,
    **{name: _bpr for name in BPR_MODELS},
}


def _refit(
    name: str, spec: RunSpec, full: NCFData, epochs: int, options: dict | None = None, **changes
) -> tuple[torch.nn.Module, dict]:
    """A fresh model trained on training + validation data for ``epochs`` epochs, and the
    peeking numbers of the same run (see :func:`_fit_and_peek`); ``options`` go to ``fit``."""
    seed_everything(spec.seed)
    model = build_model(name, full.n_users, full.n_items, spec.model_config())
    return _fit_and_peek(model, full, spec.train_config(**changes), epochs, options)


def _fit_and_peek(
    model, full: NCFData, config: TrainConfig, epochs: int, options: dict | None = None
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

    result = fit(
        model, full, replace(config, select_on="test", patience=None), on_epoch=keep,
        **(options or {}),
    )  # fmt: skip
    if not kept:
        raise ConfigError(f"cannot keep epoch {epochs} of a {config.epochs}-epoch run")
    model.load_state_dict(kept)
    return model, {
        "epoch": result.best_epoch,
        "hr@10": result.best["test_hr"],
        "ndcg@10": result.best["test_ndcg"],
    }


@dataclass
class Part:
    """A GMF or MLP of the grid, trained once and shared by the runs that need it: its
    selection fit and, once a refit run asked for it, ``(refit model, peeking numbers)``."""

    result: FitResult
    refit: tuple[torch.nn.Module, dict] | None = None


def _part(
    name: str, spec: RunSpec, data: NCFData, parts: dict, full: NCFData | None = None
) -> Part:
    """The cached GMF or MLP of ``spec``'s factors, seed, epochs, negatives and depth (refit
    on ``full`` when given and not yet refit)."""
    key = (name, spec.factors, spec.seed, spec.epochs, spec.num_ng, spec.depth)
    if key not in parts:
        config = replace(spec, model=name).train_config()
        parts[key] = Part(train_model(name, data, config, spec.model_config()))
    part = parts[key]
    if full is not None and part.refit is None:
        part.refit = _refit(name, spec, full, part.result.best_epoch)
    return part


def build_splits(ratings, seed: int = 42) -> tuple[NCFData, NCFData]:
    """The split with validation items (for selection) and the one without (for refits),
    which share their test items and test candidates."""
    data = build_dataset(ratings, seed=seed, draw=large_catalogue_candidates)
    full = build_dataset(ratings, seed=seed, validation=False, draw=large_catalogue_candidates)
    if not np.array_equal(data.test.candidates, full.test.candidates):
        raise AssertionError("the two splits must share their test candidates")
    return data, full


def seconds_per_million_rows(data: NCFData, steps: int = 200, batch_size: int = 256) -> float:
    """Measure NeuMF training speed here, as ``reproduce`` trains (for
    :func:`estimate_seconds`)."""
    model = build_model("neumf", data.n_users, data.n_items)
    optimizer = make_optimizer(model, TrainConfig())
    epoch = epoch_arrays(data, 4, np.random.default_rng(0))
    half = min(steps * batch_size, epoch[0].shape[0] // 2)
    for part in (slice(0, half), slice(half, 2 * half)):  # a warm-up, then the timed half
        clock = time.perf_counter()
        train_epoch(model, optimizer, batches(*(t[part] for t in epoch), batch_size=batch_size))
    return (time.perf_counter() - clock) / half * 1e6
