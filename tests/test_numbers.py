"""What would silently change a published number: evaluation over several chunks of users,
ties, the candidate sampler's distribution, the selected epoch's weights through checkpoints
and resume, users without a validation item, the loss and L2 arithmetic, and the HR the
command line prints. Each expected value is computed here directly, not by the code under
test."""

from __future__ import annotations

import random
import re
import time
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest
import torch

from ncf_lib.checkpoints import FORMAT, load_checkpoint
from ncf_lib.cli import main
from ncf_lib.dataset import build_dataset
from ncf_lib.errors import ConfigError
from ncf_lib.metrics import evaluate, full_ranking_metrics, full_ranks, rank_of_first
from ncf_lib.models import ModelConfig, build_model
from ncf_lib.ratings import Ratings, load_ratings
from ncf_lib.sampling import batches, epoch_arrays
from ncf_lib.synthetic import synthetic_ratings
from ncf_lib.train import (
    TrainConfig,
    fit,
    resolve_device,
    seed_everything,
    train_epoch,
    train_model,
)

QUICK = dict(progress=False, batch_size=256)
SMALL_SHAPE = "synthetic:150x300x4500"


@pytest.fixture(scope="module")
def wide():
    """5,000 users x 1,000 items: more users than one chunk of the candidate sampler
    (4,194 users at 1,000 items), of candidate scoring (2,048) and of full ranking (2,097)."""
    frame = synthetic_ratings(5000, 1000, 60_000, seed=3)
    return build_dataset(Ratings(frame, None, "synthetic:5000x1000x60000"), seed=11)


def _table_scorer(n_users: int, n_items: int, seed: int = 0):
    """A fixed random score per (user, item), and the scorer reading it."""
    table = torch.from_numpy(np.random.default_rng(seed).random((n_users, n_items)))

    def score(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return table[users[:, None], items]

    return table.numpy(), score


def _direct(ranks: np.ndarray, k: int = 10) -> dict[str, float]:
    gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return {"hr": float((ranks < k).mean()), "ndcg": float(gains.mean())}


def test_evaluation_over_many_chunks_equals_a_direct_computation(wide):
    table, score = _table_scorer(wide.n_users, wide.n_items)
    for eval_set in (wide.validation, wide.test):
        scores = table[eval_set.users[:, None], eval_set.candidates]
        ranks = (scores[:, 1:] >= scores[:, :1]).sum(axis=1)
        got = evaluate(score, eval_set)
        assert got == pytest.approx(_direct(ranks), abs=1e-12)


def _full_ranks_directly(table, data, eval_set, exclude):
    """Rank of each held-out item among the items the user did not train on (nor hold out
    in ``exclude``), ties against it."""
    known = np.zeros((data.n_users, data.n_items), dtype=bool)
    known[data.train_users, data.train_items] = True
    if exclude is not None:
        known[exclude.users, exclude.items] = True
    users, held = eval_set.users, eval_set.items
    scores = table[users]
    beats = (scores >= scores[np.arange(users.size), held][:, None]) & ~known[users]
    beats[np.arange(users.size), held] = False
    return beats.sum(axis=1)


def test_full_ranking_over_many_chunks_equals_a_direct_computation(wide):
    table, score = _table_scorer(wide.n_users, wide.n_items, seed=1)
    want = _full_ranks_directly(table, wide, wide.test, wide.validation)
    got = full_ranks(score, wide, wide.test, exclude=wide.validation).numpy()
    assert np.array_equal(got, want)
    metrics = full_ranking_metrics(score, wide, wide.test, 10, exclude=wide.validation)
    assert metrics["hr"] == pytest.approx(_direct(want)["hr"], abs=1e-12)


def test_users_without_a_validation_item_are_ranked_with_validation_excluded():
    """Users with two ratings have a test item but no validation item: excluding the
    validation items must not touch their rows (nor borrow another user's item)."""
    frame = synthetic_ratings(300, 200, 6000, seed=5)
    ids = np.sort(frame["user_id"].unique())
    few = frame["user_id"].isin([*ids[::3], ids[-1]])  # every third user and the last ...
    frame = frame[~few | (frame.groupby("user_id").cumcount() < 2)]  # ... keeps two ratings
    data = build_dataset(Ratings(frame, None, "two-rating users"), seed=2)
    lacking = np.setdiff1d(data.test.users, data.validation.users)
    assert lacking.size > 50 and data.test.users.max() in lacking  # the cases under test
    table, score = _table_scorer(data.n_users, data.n_items, seed=4)
    want = _full_ranks_directly(table, data, data.test, data.validation)
    got = full_ranks(score, data, data.test, exclude=data.validation).numpy()
    assert np.array_equal(got, want)


def test_a_constant_scorer_ranks_every_held_out_item_last(wide):
    def constant(users, items):
        return torch.zeros(items.shape)

    assert evaluate(constant, wide.test) == {"hr": 0.0, "ndcg": 0.0}
    full = full_ranking_metrics(constant, wide, wide.test, 10, exclude=wide.validation)
    assert full["hr"] == 0.0 and full["ndcg"] == 0.0


def test_the_default_candidates_are_uniform_over_unseen_items_across_chunks(wide):
    """Each user's 99 candidates: distinct, never an item of theirs, and uniform over their
    unseen items. Per item, the draws over all users are compared with their expectation
    (sum over users of 99 / unseen items); with a fixed seed the test is deterministic, and
    under a correct sampler the chance of any |z| above 5 among 1,000 items is below 1e-3.
    A bias towards low (or high) ids moves the mean z of the two halves apart."""
    seen = np.zeros((wide.n_users, wide.n_items), dtype=bool)
    seen[wide.train_users, wide.train_items] = True
    for eval_set in (wide.validation, wide.test):
        seen[eval_set.users, eval_set.items] = True
    for eval_set in (wide.validation, wide.test):
        negatives = eval_set.candidates[:, 1:]
        assert (np.sort(negatives, axis=1)[:, 1:] != np.sort(negatives, axis=1)[:, :-1]).all()
        assert not seen[eval_set.users[:, None], negatives].any()
        unseen = ~seen[eval_set.users]
        expected = (unseen * (99 / unseen.sum(axis=1))[:, None]).sum(axis=0)
        observed = np.bincount(negatives.ravel(), minlength=wide.n_items)
        z = (observed - expected) / np.sqrt(expected)
        assert np.abs(z).max() < 5
        half = wide.n_items // 2
        assert abs(z[:half].mean() - z[half:].mean()) < 5 * np.sqrt(2 / half)
        later = eval_set.users >= 4194  # the users of the second chunk have their own draws
        assert not seen[eval_set.users[later][:, None], negatives[later]].any()


def test_train_epoch_returns_the_row_weighted_mean_loss(small_data):
    rows = epoch_arrays(small_data, 4, np.random.default_rng(0))
    torch.manual_seed(0)
    model = build_model("neumf", small_data.n_users, small_data.n_items)
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)  # the weights stay where they are
    assert rows[0].shape[0] % 768  # a shorter last batch: a plain mean of batches would differ
    loss = train_epoch(model, frozen, batches(*rows, batch_size=768))
    with torch.no_grad():
        logits = model(rows[0], rows[1]).double()
        labels = rows[2].double()
        bce = torch.clamp(logits, min=0) - logits * labels + torch.log1p(torch.exp(-logits.abs()))
    assert loss == pytest.approx(float(bce.mean()), rel=1e-5)


@pytest.mark.parametrize("name, sparse", [("mf", False), ("neumf", False), ("neumf", True)])
def test_one_step_with_l2_is_sgd_on_the_penalised_loss(small_data, name, sparse):
    """``l2`` is the weight of the sum of squares of a batch's embedding rows divided by the
    batch size: one SGD step through train_epoch equals autograd's step on that loss, with
    dense embedding gradients and with sparse ones (``sparse-adam``'s tables, trained by
    ``ncf_lib.scale.optimizers.train_epoch``)."""
    from ncf_lib.scale import optimizers

    users, items, labels = (t[:64] for t in epoch_arrays(small_data, 4, np.random.default_rng(1)))
    weight, lr = 0.5, 0.1
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(build_model(name, small_data.n_users, small_data.n_items))
    by_library, by_hand = models
    for module in by_library.modules():
        if isinstance(module, torch.nn.Embedding):
            module.sparse = sparse
    epoch = optimizers.train_epoch if sparse else train_epoch
    epoch(by_library, torch.optim.SGD(by_library.parameters(), lr=lr),
          [(users, items, labels)], l2=weight)  # fmt: skip
    penalty = sum(
        module(users if "user" in n else items).pow(2).sum()
        for n, module in by_hand.named_modules()
        if isinstance(module, torch.nn.Embedding)
    )
    loss = torch.nn.BCEWithLogitsLoss()(by_hand(users, items), labels)
    (loss + weight / labels.shape[0] * penalty).backward()
    with torch.no_grad():
        for p in by_hand.parameters():
            p -= lr * p.grad
    for a, b in zip(by_library.parameters(), by_hand.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def spoiled(small_data, tmp_path_factory):
    """A trained GMF, then fine-tuned with SGD at lr 10 from ``evaluate_start``: its best
    epoch is 0 (the model as given), earlier than the last; with the weights at each epoch."""
    gmf = train_model("gmf", small_data, TrainConfig(epochs=2, lr=0.01, **QUICK)).model
    given = {k: v.clone() for k, v in gmf.state_dict().items()}
    config = TrainConfig(epochs=3, optimizer="sgd", lr=10.0, evaluate_start=True, **QUICK)
    return gmf, given, config, tmp_path_factory.mktemp("spoiled")


def _weights_at_each_epoch(model):
    seen = {}

    def on_epoch(row):
        seen[row["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}

    return seen, on_epoch


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_the_selected_epoch_not_the_last_is_returned_and_saved(small_data, spoiled):
    gmf, given, config, folder = spoiled
    gmf.load_state_dict(given)
    seen, on_epoch = _weights_at_each_epoch(gmf)
    path = folder / "best.pt"
    result = fit(gmf, small_data, replace(config, checkpoint=str(path)), on_epoch=on_epoch)
    assert result.best_epoch == 0 and result.history["epoch"].max() == 3
    assert not _same(seen[3], seen[0])  # the last epoch's weights are another model
    assert _same(result.model.state_dict(), seen[0])
    saved = load_checkpoint(path)
    assert saved.epoch == 0 and _same(saved.model.state_dict(), seen[0])
    assert saved.training["history"][-1]["epoch"] == saved.training["epoch"] == 3
    assert _same(saved.training["model"], seen[3])  # the weights to resume from: the last


def test_resuming_keeps_the_earlier_best_epoch(small_data, spoiled):
    gmf, given, config, folder = spoiled
    gmf.load_state_dict(given)
    whole = fit(gmf, small_data, config)
    gmf.load_state_dict(given)
    path = folder / "cut.pt"
    fit(gmf, small_data, replace(config, epochs=2, checkpoint=str(path)))
    fresh = build_model("gmf", small_data.n_users, small_data.n_items)
    resumed = fit(fresh, small_data, config, resume=load_checkpoint(path))
    assert resumed.best_epoch == whole.best_epoch == 0
    metrics = ["epoch", "loss", "val_hr", "val_ndcg", "test_hr", "test_ndcg"]
    pd.testing.assert_frame_equal(resumed.history[metrics], whole.history[metrics])
    assert _same(resumed.model.state_dict(), given)


def test_the_printed_hr_is_the_checkpoints_hr(tmp_path, capsys):
    argv = ["train", "--dataset", SMALL_SHAPE, "--model", "gmf", "--epochs", "2", "--no-progress",
            "--no-log", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    printed = re.search(r"Best epoch \d+: HR = ([\d.]+), NDCG = ([\d.]+)", capsys.readouterr().out)
    ckpt = load_checkpoint(next(tmp_path.glob("*.pt")))
    data = build_dataset(load_ratings(SMALL_SHAPE), **ckpt.data)
    direct = evaluate(ckpt.model.score, data.test)
    assert (float(printed[1]), float(printed[2])) == (
        round(direct["hr"], 3),
        round(direct["ndcg"], 3),
    )


def test_evaluate_prints_each_scorers_numbers(tmp_path, capsys):
    assert main(["train", "--dataset", SMALL_SHAPE, "--model", "gmf", "--epochs", "1",
                 "--no-progress", "--no-log", "--out", str(tmp_path)]) == 0  # fmt: skip
    path = next(tmp_path.glob("*.pt"))
    capsys.readouterr()
    assert main(["evaluate", str(path)]) == 0
    lines = {
        tuple(line.split()[:2]): line.split()[2:]
        for line in capsys.readouterr().out.splitlines()[2:]
    }
    ckpt = load_checkpoint(path)
    data = build_dataset(load_ratings(SMALL_SHAPE), **ckpt.data)
    for split, eval_set, exclude in (("validation", data.validation, None),
                                     ("test", data.test, data.validation)):  # fmt: skip
        sampled = evaluate(ckpt.model.score, eval_set)
        full = full_ranking_metrics(ckpt.model.score, data, eval_set, 10, exclude=exclude)
        want = [f"{v:.3f}" for v in (sampled["hr"], sampled["ndcg"], full["hr"], full["ndcg"])]
        assert lines[("model", split)] == want, split


def test_the_fingerprint_tells_apart_every_change_of_split(small_ratings):
    """Another seed changes only the candidates; another num_ng_test their number; fewer
    ratings the training pairs: each gives another fingerprint, the same build the same."""
    base = build_dataset(small_ratings, seed=7)
    assert build_dataset(small_ratings, seed=7).fingerprint == base.fingerprint
    reseeded = build_dataset(small_ratings, seed=8)
    assert np.array_equal(reseeded.train_keys, base.train_keys)  # the same training pairs
    assert reseeded.fingerprint["split"] != base.fingerprint["split"]
    assert build_dataset(small_ratings, seed=7, num_ng_test=50).fingerprint != base.fingerprint
    fewer = Ratings(small_ratings.ratings.iloc[:-40], small_ratings.movies, small_ratings.name)
    assert build_dataset(fewer, seed=7).fingerprint["split"] != base.fingerprint["split"]


@pytest.mark.parametrize("named", [False, True])
def test_a_checkpoint_keeps_ids_settings_and_weights(small_ratings, tmp_path, named):
    """``save_checkpoint`` of a model (no resume state): the original ids (integers or
    names) come back as they were, with the training settings and the same scores."""
    from dataclasses import asdict

    from ncf_lib.checkpoints import save_checkpoint

    frame = small_ratings.ratings.copy()
    if named:
        frame["user_id"] = "u" + frame["user_id"].astype(str)
    data = build_dataset(Ratings(frame, None, "ids"), seed=7)
    model = build_model("neumf", data.n_users, data.n_items)
    config = TrainConfig(epochs=3, lr=0.002)
    path = save_checkpoint(tmp_path / "deep" / "m.pt", model, data, asdict(config), epoch=2,
                           metrics={"test_hr": 0.5})  # fmt: skip
    loaded = load_checkpoint(path)
    assert loaded.user_ids.tolist() == data.user_ids.tolist()
    assert loaded.user_ids.dtype.kind == ("O" if named else "i")
    assert loaded.item_ids.dtype == np.int64 and np.array_equal(loaded.item_ids, data.item_ids)
    assert loaded.train_config == asdict(config) and loaded.training is None
    assert loaded.epoch == 2 and loaded.metrics == {"test_hr": 0.5}
    users, items = torch.arange(5), torch.arange(40).reshape(5, 8)
    assert torch.equal(loaded.model.score(users, items), model.eval().score(users, items))


def test_per_user_ranks_are_the_ranks_the_metrics_count(wide):
    from ncf_lib.metrics import per_user_ranks

    table, score = _table_scorer(wide.n_users, wide.n_items, seed=2)
    rows = per_user_ranks(score, wide)
    assert rows.index.equals(pd.RangeIndex(len(rows)))  # one row per held-out item, numbered
    test = rows[rows["split"] == "test"]
    assert test["user_id"].tolist() == wide.user_ids[wide.test.users].tolist()
    assert test["item_id"].tolist() == wide.item_ids[wide.test.items].tolist()
    scores = table[wide.test.users[:, None], wide.test.candidates]
    assert np.array_equal(test["rank"], (scores[:, 1:] >= scores[:, :1]).sum(axis=1))
    full = _full_ranks_directly(table, wide, wide.test, wide.validation)
    assert np.array_equal(test["full_rank"], full)
    val = rows[rows["split"] == "validation"]
    assert np.array_equal(
        val["full_rank"], _full_ranks_directly(table, wide, wide.validation, None)
    )


def test_full_ranking_defaults_to_hr_at_10(wide):
    table, score = _table_scorer(wide.n_users, wide.n_items, seed=3)
    want = _direct(_full_ranks_directly(table, wide, wide.test, None))
    got = full_ranking_metrics(score, wide, wide.test)
    assert got == pytest.approx({**want, "recall": want["hr"]}, abs=1e-12)


def test_standard_errors_and_the_default_k_count_a_rank_of_10_as_a_miss():
    from ncf_lib.metrics import sampled_metrics, standard_errors

    ranks = torch.tensor([0, 9, 10, 50])  # two hits in the top 10, two misses
    hits = np.array([1.0, 1.0, 0.0, 0.0])
    gains = np.array([1.0, 1 / np.log2(11), 0.0, 0.0])
    errors = standard_errors(ranks, 10)
    assert errors["hr"] == pytest.approx(hits.std(ddof=1) / 2)
    assert errors["ndcg"] == pytest.approx(gains.std(ddof=1) / 2)
    scores = torch.tensor([[0.5] + [1.0] * r + [0.0] * (60 - r) for r in (0, 9, 10, 50)])
    assert sampled_metrics(scores) == pytest.approx({"hr": 0.5, "ndcg": gains.mean()})


# ---- limits the metrics, checkpoints and selection depend on ----------------------------------


def test_a_nan_held_out_score_ranks_last():
    scores = torch.tensor([[float("nan"), 0.1, -5.0], [float("nan"), float("nan"), 0.0]])
    assert rank_of_first(scores).tolist() == [2, 2]


def test_k_must_be_below_the_number_of_candidates(small_data):
    scorer = lambda u, i: torch.rand(i.shape)  # noqa: E731
    n = small_data.test.candidates.shape[1]
    assert 0.9 < evaluate(scorer, small_data.test, n - 1)["hr"] < 1.0  # all but the last-ranked
    with pytest.raises(ValueError, match=f"top_k \\(--top-k\\) must be at least 1 and below the "
                                         f"{n} candidates per user, got {n}"):  # fmt: skip
        evaluate(scorer, small_data.test, n)
    with pytest.raises(ValueError, match=f"below the {small_data.n_items} items, got"):
        full_ranking_metrics(scorer, small_data, small_data.test, small_data.n_items)


def _saved(small_data, tmp_path, name="gmf.pt"):
    config = TrainConfig(epochs=2, progress=False, checkpoint=str(tmp_path / "a" / "b" / name))
    return train_model("gmf", small_data, config), config


def test_a_checkpoint_keeps_its_settings_and_metrics_in_a_new_folder(small_data, tmp_path):
    result, config = _saved(small_data, tmp_path)  # a/b/ did not exist
    ckpt = load_checkpoint(config.checkpoint)
    assert ckpt.train_config == asdict(config)
    assert ckpt.metrics == result.best and ckpt.epoch == result.best_epoch


def test_a_checkpoint_of_another_format_is_refused(small_data, tmp_path):
    _, config = _saved(small_data, tmp_path)
    payload = torch.load(config.checkpoint, weights_only=True)
    torch.save({**payload, "format": FORMAT - 1}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=f"checkpoint format {FORMAT - 1} \\(gmf\\); this "
                                         f"version reads format {FORMAT}"):  # fmt: skip
        load_checkpoint(tmp_path / "old.pt")


class _Anything:
    """An object a checkpoint must never unpickle."""


def test_a_checkpoint_holding_code_objects_is_not_unpickled(small_data, tmp_path):
    _, config = _saved(small_data, tmp_path)
    payload = torch.load(config.checkpoint, weights_only=True)
    torch.save({**payload, "metrics": _Anything()}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match="code.pt: not an ncf_lib checkpoint \\(UnpicklingError"):
        load_checkpoint(tmp_path / "code.pt")


def test_a_changed_resume_state_is_refused(small_data, tmp_path):
    _, config = _saved(small_data, tmp_path)
    payload = torch.load(config.checkpoint, weights_only=True)
    weights = dict(payload["training"]["model"])
    name = next(iter(weights))
    weights[name] = weights[name] + 1.0
    torch.save({**payload, "training": {**payload["training"], "model": weights}},
               tmp_path / "state.pt")  # fmt: skip
    with pytest.raises(ValueError, match="state.pt: damaged checkpoint: its weights do not match"):
        load_checkpoint(tmp_path / "state.pt")


def test_ties_keep_the_earliest_epoch(small_data):
    # lr so small that no epoch changes a rank: every epoch ties with the first
    config = TrainConfig(epochs=3, lr=1e-30, progress=False, evaluate_start=True)
    result = train_model("gmf", small_data, config)
    assert result.history["val_hr"].nunique() == 1
    assert result.best_epoch == 0


def test_fit_applies_the_l2_weight(small_data):
    plain = train_model("mf", small_data, TrainConfig(epochs=1, progress=False))
    shrunk = train_model("mf", small_data, TrainConfig(epochs=1, l2=0.5, progress=False))
    norm = lambda r: sum(float(w.detach().norm()) for w in r.model.parameters())  # noqa: E731
    assert norm(shrunk) < norm(plain)


def test_the_seconds_of_a_fit_are_its_wall_time(small_data):
    clock = time.perf_counter()
    result = train_model("gmf", small_data, TrainConfig(epochs=2, progress=False))
    wall = time.perf_counter() - clock
    spent = result.history[["train_seconds", "eval_seconds"]].to_numpy()
    assert (spent >= 0).all() and spent.sum() <= result.seconds <= wall


def test_train_model_builds_the_model_it_is_given(small_data):
    config = ModelConfig(factor_num=4, layers=(16, 8))
    result = train_model("neumf", small_data, TrainConfig(epochs=1, progress=False), config)
    assert result.model.config == config


def test_seed_everything_seeds_python_and_numpy():
    seed_everything(3)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(3)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_the_device_is_the_machines():
    cuda = torch.cuda.is_available()
    assert resolve_device().type == ("cuda" if cuda else "cpu")
    assert resolve_device("cpu").type == "cpu"
    if not cuda:
        with pytest.raises(ValueError, match="^--device cuda, but no CUDA device is available$"):
            resolve_device("cuda")


# ---- what a survivor of mutation testing showed unpinned ----------------------------------


def test_another_datas_checkpoint_is_refused_naming_both_values(small_ratings, tmp_path):
    from ncf_lib.checkpoints import check_same_data

    # validation items or not: another training set and another split
    trained, other = (build_dataset(small_ratings, validation=v) for v in (True, False))
    a, b = trained.fingerprint, other.fingerprint
    message = (
        f"{tmp_path / 'm.pt'} was trained on other data (train {a['train']}, split {a['split']}) "
        f"than this one (train {b['train']}, split {b['split']}); use the dataset and split "
        "settings it was trained with"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_same_data(tmp_path / "m.pt", trained.fingerprint, other)
    check_same_data(tmp_path / "m.pt", trained.fingerprint, trained)  # the same: no error


def test_the_fingerprint_holds_16_hex_digits_per_digest(small_ratings):
    from ncf_lib.dataset import fingerprint_of

    fingerprint = fingerprint_of(build_dataset(small_ratings))  # not a fixture's cached one
    for key in ("ids", "split"):
        assert re.fullmatch("[0-9a-f]{16}", fingerprint[key]), key


def test_an_unknown_user_is_named_as_a_user_by_default(small_data):
    with pytest.raises(LookupError, match="^user nobody is not in "):
        small_data.user_index("nobody")


def test_a_checkpoint_rebuilds_a_model_of_other_sizes(small_data, tmp_path):
    from ncf_lib.checkpoints import save_checkpoint

    config = ModelConfig(factor_num=4, layers=(16, 8), dropout=0.25)
    seed_everything(0)
    model = build_model("neumf", small_data.n_users, small_data.n_items, config).eval()
    save_checkpoint(tmp_path / "n.pt", model, small_data, {}, epoch=1, metrics={})
    loaded = load_checkpoint(tmp_path / "n.pt").model
    assert loaded.config == config and not loaded.training
    users = torch.arange(small_data.n_users)
    items = torch.from_numpy(small_data.test.candidates)
    assert torch.equal(loaded.score(users, items), model.score(users, items))


@pytest.mark.parametrize("key", ["training_sha256", "n_users"])
def test_a_checkpoint_without_a_part_is_damaged_naming_it(small_data, tmp_path, key):
    _, config = _saved(small_data, tmp_path)
    payload = torch.load(config.checkpoint, weights_only=True)
    del payload[key]
    torch.save(payload, tmp_path / "part.pt")
    message = f"{tmp_path / 'part.pt'}: damaged checkpoint, it has no '{key}'"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_checkpoint(tmp_path / "part.pt")


def test_the_resume_state_does_not_hold_the_best_weights_twice(small_data, tmp_path):
    """The selected weights are the checkpoint's own ``state_dict``; the resume state holds
    the last epoch's weights beside them, not a second copy of the best."""
    _, config = _saved(small_data, tmp_path)
    training = load_checkpoint(config.checkpoint).training
    assert "best_weights" not in training and set(training["model"]) == set(
        load_checkpoint(config.checkpoint).model.state_dict()
    )


def test_resuming_a_finished_model_says_it_has_no_state(small_data, tmp_path):
    from ncf_lib.checkpoints import save_checkpoint

    model = build_model("gmf", small_data.n_users, small_data.n_items)
    save_checkpoint(tmp_path / "done.pt", model, small_data, {}, epoch=1, metrics={})
    finished = load_checkpoint(tmp_path / "done.pt")
    with pytest.raises(ValueError, match="^this checkpoint holds no training state to resume"):
        fit(model, small_data, TrainConfig(epochs=2, **QUICK), resume=finished)


def test_divergence_with_l2_names_the_rate_and_the_weight(small_data):
    gmf = train_model("gmf", small_data, TrainConfig(epochs=1, **QUICK)).model
    config = TrainConfig(epochs=2, optimizer="sgd", lr=1e5, l2=0.5, **QUICK)
    message = "lower the learning rate (lr=100000.0, sgd) or the L2 weight (l2=0.5)"
    pattern = f"^training diverged in epoch 1: the loss is (nan|inf); {re.escape(message)}$"
    with pytest.raises(ValueError, match=pattern):
        fit(gmf, small_data, config)


def test_fit_refuses_a_k_of_all_candidates_naming_them(small_data):
    n = small_data.test.candidates.shape[1]
    model = build_model("gmf", small_data.n_users, small_data.n_items)
    with pytest.raises(ValueError, match=f"below the {n} candidates per user, got {n}: "):
        fit(model, small_data, TrainConfig(epochs=1, top_k=n, **QUICK))


def test_an_unfinished_log_warns_and_keeps_the_run(small_data, tmp_path, monkeypatch):
    """A full disk while TensorBoard's last record is written: the run's result is kept, and
    the warning names the folder."""
    from tensorboardX import SummaryWriter

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SummaryWriter, "add_hparams", full)
    config = TrainConfig(epochs=1, log_dir=str(tmp_path / "tb"), **QUICK)
    model = build_model("gmf", small_data.n_users, small_data.n_items)
    message = f"TensorBoard logs in {config.log_dir} are incomplete: [Errno 28] No space left"
    with pytest.warns(RuntimeWarning, match=f"^{re.escape(message)}"):
        result = fit(model, small_data, config)
    assert result.best_epoch == 1 and result.best["test_hr"] > 0


def _rows(rows) -> Ratings:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Ratings(frame.astype({"rating": "float32"}), None, "x")


def test_the_user_named_for_too_few_unseen_items_is_that_user():
    """Users 1 and 2 have room for 2 negatives among 6 items; user 3 has seen 5 of them."""
    rows = [(u, i, 4, i) for u, n in ((1, 3), (2, 3), (3, 5)) for i in range(1, n + 1)]
    rows += [(1, 6, 4, 9)]
    with pytest.raises(ValueError, match=re.escape(
        "x: user 3 never interacted with only 1 of the 6 items, fewer than num_ng_test "
        "(--num-ng-test) 2; lower it")):  # fmt: skip
        build_dataset(_rows(rows), num_ng_test=2, validation=False)


def test_no_ratings_and_no_negatives_are_refused_saying_why(small_ratings):
    with pytest.raises(ValueError, match="^x: no ratings$"):
        build_dataset(_rows([]))
    with pytest.raises(ValueError, match=re.escape(
        "num_ng_test (--num-ng-test) must be at least 1, got 0: with no sampled negatives the "
        "held-out item is always first and HR is 1")):  # fmt: skip
        build_dataset(small_ratings, num_ng_test=0)


def test_titles_follow_the_items_when_the_movies_file_is_in_another_order():
    rows = [(1, 30, 4, 1), (1, 10, 4, 2), (2, 20, 4, 1), (2, 30, 4, 2), (2, 40, 4, 3)]
    movies = pd.DataFrame({"item_id": [40, 99, 20, 10], "title": ["D", "Z", "B", "A"]})
    ratings = replace(_rows(rows), movies=movies.assign(genres=""))
    data = build_dataset(ratings, num_ng_test=1, validation=False)
    assert data.item_ids.tolist() == [10, 20, 30, 40]
    assert data.titles.tolist() == ["A", "B", "(unknown title)", "D"]


def test_weights_that_do_not_fit_are_named_with_the_first_line_of_the_reason(small_data, tmp_path):
    _, config = _saved(small_data, tmp_path)
    payload = torch.load(config.checkpoint, weights_only=True)
    long_name = "x" * 200  # a reason longer than the 160 characters the message keeps
    payload["model_config"] = {**payload["model_config"], long_name: 1}
    torch.save(payload, tmp_path / "odd.pt")
    reason = f"ModelConfig.__init__() got an unexpected keyword argument '{long_name}'"[:160]
    message = f"{tmp_path / 'odd.pt'}: damaged checkpoint, its weights do not fit ({reason})"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_checkpoint(tmp_path / "odd.pt")


def test_fit_records_hr_at_its_own_k(small_data):
    config = TrainConfig(epochs=1, top_k=5, select_on="last", **QUICK)
    result = train_model("gmf", small_data, config)
    for split, eval_set in (("val", small_data.validation), ("test", small_data.test)):
        at_5, at_10 = (evaluate(result.model.score, eval_set, k)["hr"] for k in (5, 10))
        assert result.best[f"{split}_hr"] == at_5 != at_10


def test_selecting_on_validation_needs_validation_items(small_ratings):
    data = build_dataset(small_ratings, validation=False)
    model = build_model("gmf", data.n_users, data.n_items)
    message = "select_on='validation' needs data built with validation=True"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fit(model, data, TrainConfig(epochs=1, **QUICK))


def test_the_cores_optimizers_send_sparse_adam_to_scale():
    from ncf_lib.train import make_optimizer

    message = "make_optimizer builds adam or sgd; build another with fit(..., make_optimizer=...)"
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_optimizer(torch.nn.Linear(2, 1), TrainConfig(optimizer="sparse-adam"))


def test_negatives_are_uniform_over_the_items_left_item_0_too():
    """User 1 trains on items 3..9 of 1..10 (10 is held out): its negatives are items 1, 2 and
    10, a third each, redraws included (14,000 draws: a share's standard error is 0.004)."""
    from ncf_lib.sampling import sample_negatives

    rows = [(1, i, 4, i) for i in range(3, 11)] + [(u, i, 4, i) for u in (2, 3) for i in (1, 2)]
    data = build_dataset(_rows(rows), num_ng_test=1, validation=False)
    negatives = sample_negatives(data, 2000, np.random.default_rng(0))
    mine = negatives[np.repeat(data.train_users, 2000) == data.user_index("1")]
    shares = np.bincount(mine, minlength=data.n_items) / mine.size
    assert np.allclose(shares[[0, 1, 9]], 1 / 3, atol=0.03) and shares[2:9].sum() == 0
