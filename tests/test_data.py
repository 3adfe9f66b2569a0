"""Tests of ratings, synthetic, dataset and sampling: parsing, split, candidates, negatives."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from ncf_lib import dataset as dataset_module
from ncf_lib import ratings as ratings_module
from ncf_lib import synthetic
from ncf_lib.dataset import NCFData, build_dataset, leave_one_out, reindex, sample_candidates
from ncf_lib.errors import UnknownIdError
from ncf_lib.ratings import (
    RATING_DTYPES,
    DataFormatError,
    Ratings,
    find_ratings_file,
    load_ratings,
    read_movies,
    read_ratings,
)
from ncf_lib.sampling import NegativeSampler, batches, epoch_arrays, sample_negatives
from ncf_lib.scale import candidates as candidates_module
from ncf_lib.scale import parse_cache
from ncf_lib.scale.sampler import TorchSampler
from ncf_lib.study.report import dataset_label
from ncf_lib.synthetic import synthetic_ratings


def _write(path, text):
    path.write_text(text)
    return path


# ---- parsing -------------------------------------------------------------------------

ROWS = [(1, 1193, 5, 978300760), (1, 661, 3, 978302109), (2, 1357, 4, 978298709)]


@pytest.mark.parametrize(
    "name, line, header",
    [
        ("ratings.dat", "{}::{}::{}::{}", None),
        ("u.data", "{}\t{}\t{}\t{}", None),
        ("ratings.csv", "{},{},{},{}", "userId,movieId,rating,timestamp"),
    ],
)
def test_read_ratings_each_format(tmp_path, name, line, header):
    lines = ([header] if header else []) + [line.format(*row) for row in ROWS]
    frame = read_ratings(_write(tmp_path / name, "\n".join(lines) + "\n"))
    assert list(frame.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert frame.dtypes.astype(str).to_dict() == RATING_DTYPES
    assert frame.to_numpy().tolist() == [list(map(float, row)) for row in ROWS]


def test_read_ratings_half_stars_csv(tmp_path):
    path = _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,964982703\n")
    assert read_ratings(path)["rating"].tolist() == [3.5]


@pytest.mark.parametrize(
    "text, bad_line",
    [
        ("1::2::3::4\n1::2::x::4\n1::3::3::5\n", 2),  # not a number
        ("1::2::3::4\n1::3::3::5\n1::2::3\n", 3),  # missing field
        ("1::2::3::4\n1::2::3::4::5\n", 2),  # extra field
        ("1\t2\t3\t4\n5\t6\t7\t8\n9\t10\t\t11\n", 3),  # empty field
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, text, bad_line):
    path = _write(tmp_path / "ratings.dat", text)
    with pytest.raises(DataFormatError) as err:
        read_ratings(path)
    assert str(path) in str(err.value)
    assert f"line {bad_line}" in str(err.value)


def test_unrecognised_separator(tmp_path):
    with pytest.raises(DataFormatError, match="line 1"):
        read_ratings(_write(tmp_path / "r.txt", "1;2;3;4\n"))


def test_find_ratings_file_in_nested_folder(tmp_path):
    (tmp_path / "ml-1m").mkdir()
    target = _write(tmp_path / "ml-1m" / "ratings.dat", "1::2::3::4\n")
    assert find_ratings_file(tmp_path) == target
    assert find_ratings_file(target) == target
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no ratings file"):
        find_ratings_file(tmp_path / "empty")


def test_read_movies_each_format(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    _write(
        tmp_path / "a" / "movies.dat", "1::Toy Story (1995)::Animation|Comedy\n2::Se7en: x::Crime\n"
    )
    _write(tmp_path / "b" / "movies.csv", 'movieId,title,genres\n1,"Heat, 1995",Action\n')
    _write(
        tmp_path / "c" / "u.item",
        "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join("0010" + "0" * 15) + "\n",
    )
    _write(tmp_path / "c" / "u.genre", "".join(f"g{i}|{i}\n" for i in range(19)))
    a, b, c = (read_movies(tmp_path / x) for x in "abc")
    assert a["title"].tolist() == ["Toy Story (1995)", "Se7en: x"]
    assert a["genres"].tolist() == ["Animation|Comedy", "Crime"]
    assert b.loc[0, "title"] == "Heat, 1995"
    assert c.loc[0, "genres"] == "g2"
    assert read_movies(tmp_path) is None


def test_load_ratings_by_path_and_errors(tmp_path):
    path = _write(tmp_path / "u.data", "1\t2\t3\t4\n")
    loaded = load_ratings(path)
    assert len(loaded.ratings) == 1 and loaded.movies is None
    with pytest.raises(FileNotFoundError, match="neither a known dataset"):
        load_ratings(tmp_path / "missing")


# ---- synthetic -----------------------------------------------------------------------


def test_synthetic_shape_and_determinism():
    a = synthetic_ratings(300, 400, 9_000, seed=3)
    b = synthetic_ratings(300, 400, 9_000, seed=3)
    c = synthetic_ratings(300, 400, 9_000, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert len(a) == 9_000 and a["user_id"].nunique() == 300
    assert not a.duplicated(["user_id", "item_id"]).any()
    assert a.dtypes.astype(str).to_dict() == RATING_DTYPES
    assert set(a["rating"].unique()) <= {1, 2, 3, 4, 5}
    assert a["timestamp"].between(946_684_800, 1_072_915_200).all()  # within 2000..2003
    popularity = a["item_id"].value_counts().to_numpy()
    assert popularity[:40].sum() > 3 * popularity[-40:].sum()  # long tail
    activity = a.groupby("user_id").size()
    assert activity.max() > 4 * activity.min()


class _Spy:
    """numpy, noting each call of ``argpartition``."""

    def __init__(self, module, calls: list) -> None:
        self._module, self._calls = module, calls

    def __getattr__(self, name):
        if name == "argpartition":
            self._calls.append(name)
        return getattr(self._module, name)


@pytest.mark.parametrize(
    "shape", [(300, 400, 9_000), (50, 9, 200), (500, 5_000, 20_000), (3_000, 20_000, 90_000)]
)
def test_synthetic_partial_sort_gives_the_full_sorts_data(shape, monkeypatch):
    """Each user's items are its top-scored ones in score order; a partition then a sort
    of the top picks what sorting every user's whole catalogue picked."""
    partial = []
    with monkeypatch.context() as patch:
        top = synthetic._top_in_order
        patch.setattr(synthetic, "np", _Spy(np, partial))
        fast = synthetic_ratings(*shape, seed=5)
    if shape[1] >= 5_000:
        assert partial, "the partial sort was not used"
    monkeypatch.setattr(synthetic, "_top_in_order", lambda keys, k: np.argsort(keys, axis=1))
    assert top is not synthetic._top_in_order
    pd.testing.assert_frame_equal(fast, synthetic_ratings(*shape, seed=5))


def test_synthetic_by_name():
    loaded = load_ratings("synthetic:50x80x1000", seed=2)
    assert len(loaded.ratings) == 1000 and loaded.movies is not None


def test_synthetic_refuses_dense_matrix():
    with pytest.raises(ValueError, match="sparse"):
        synthetic_ratings(10, 10, 80)


# ---- reindex, split, candidates ------------------------------------------------------


def test_reindex_is_contiguous_and_reversible(small_ratings):
    users, items, user_ids, item_ids = reindex(small_ratings.ratings)
    assert users.min() == 0 and users.max() == user_ids.size - 1
    assert np.array_equal(user_ids[users], small_ratings.ratings["user_id"].to_numpy())
    assert np.array_equal(item_ids[items], small_ratings.ratings["item_id"].to_numpy())


def test_leave_one_out_takes_latest_and_breaks_ties_by_row():
    users = np.array([0, 0, 0, 1, 1, 2, 1])
    stamps = np.array([5, 9, 1, 3, 3, 7, 2])
    train, val, test = leave_one_out(users, stamps, 3)
    assert test.tolist() == [1, 4]  # user 0: t=9; user 1: tie at t=3, the later row wins
    assert val.tolist() == [0, 3]  # user 2 has a single rating: no validation, no test
    assert sorted(train.tolist()) == [2, 5, 6]  # ... and keeps it for training
    train, val, test = leave_one_out(users, stamps, 3, validation=False)
    assert val.size == 0 and sorted(train.tolist()) == [0, 2, 3, 5, 6]


def test_build_dataset_takes_a_split_of_ones_own(small_ratings):
    """``split=``: a random hold-out (the paper's validation) instead of the latest. Its test
    and validation rows are the ones the function chose, and nothing it held out is trained."""

    def random_split(users, timestamps, n_users, *, validation=True):
        noise = np.random.default_rng(3).random(users.size)
        return leave_one_out(users, noise, n_users, validation=validation)

    latest = build_dataset(small_ratings, seed=1)
    shuffled = build_dataset(small_ratings, seed=1, split=random_split)
    users, items, _, _ = reindex(small_ratings.ratings)
    train, val, test = random_split(users, None, latest.n_users)
    assert np.array_equal(shuffled.test.users, users[test])
    assert np.array_equal(shuffled.test.items, items[test])
    assert np.array_equal(shuffled.validation.items, items[val])
    assert not np.array_equal(shuffled.test.items, latest.test.items)
    for held in (shuffled.test, shuffled.validation):
        assert not shuffled.is_train_positive(held.users, held.items).any()


@pytest.mark.parametrize("named", [False, True])
def test_user_and_item_index_find_original_ids(named):
    """An original id, given as the command line gives it (text), is found among integer ids
    and among names; anything else is an error naming the range of ids."""
    users = ["u30", "u7", "u12"] if named else [30, 7, 12]
    frame = pd.DataFrame({"user_id": np.repeat(users, 3), "item_id": [5, 9, 2, 5, 9, 4, 2, 4, 9],
                          "timestamp": np.arange(9), "rating": 4.0})  # fmt: skip
    data = build_dataset(Ratings(frame, None, "three users"), num_ng_test=1, validation=False)
    for original in users:
        assert data.user_ids[data.user_index(str(original))] == original
    assert data.item_ids[data.item_index("9")] == 9
    first, last = data.user_ids[0], data.user_ids[-1]
    with pytest.raises(UnknownIdError, match=f"{first} to {last}"):
        data.user_index("u99" if named else "99")
    with pytest.raises(UnknownIdError):
        data.user_index("7" if named else "u7")


def test_no_held_out_pair_in_train(small_data):
    d = small_data
    for held in (d.test, d.validation):
        assert not d.is_train_positive(held.users, held.items).any()
    assert np.all(np.diff(d.train_keys) > 0)
    assert d.test.users.size == d.n_users  # every generated user has >= 2 interactions


def test_duplicate_rows_never_leak(tmp_path):
    # user 1 rated item 5 twice; its latest row is the test pair, the older copy must not train.
    # (user 2 gives user 1 items to draw a negative from.)
    frame = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2, 2],
            "item_id": [5, 6, 7, 5, 8, 9],
            "rating": 4.0,
            "timestamp": [1, 2, 3, 4, 1, 2],
        }
    ).astype(RATING_DTYPES)
    data = build_dataset(Ratings(frame, None, "x"), num_ng_test=1, validation=False)
    assert data.test.items.tolist() == [0, 4]
    assert not data.is_train_positive(data.test.users, data.test.items).any()


def test_candidates_are_never_interacted(small_ratings, small_data):
    d = small_data
    users, items, _, _ = reindex(small_ratings.ratings)
    seen = set(zip(users.tolist(), items.tolist()))
    for held in (d.test, d.validation):
        assert held.candidates.shape == (held.users.size, 100)
        for u, row in zip(held.users, held.candidates):
            assert len(set(row[1:].tolist())) == 99
            assert not any((int(u), int(i)) in seen for i in row[1:])


def test_candidates_too_many_negatives_is_an_error(small_ratings):
    with pytest.raises(ValueError, match="num_ng_test"):
        build_dataset(small_ratings, num_ng_test=295)


def test_same_seed_same_split_and_candidates(small_ratings):
    a = build_dataset(small_ratings, seed=5)
    b = build_dataset(small_ratings, seed=5)
    c = build_dataset(small_ratings, seed=6)
    assert np.array_equal(a.train_keys, b.train_keys)
    assert np.array_equal(a.test.candidates, b.test.candidates)
    assert np.array_equal(a.validation.candidates, b.validation.candidates)
    assert not np.array_equal(a.test.candidates, c.test.candidates)


def test_titles_follow_reindexing(small_ratings, small_data):
    d = small_data
    assert d.titles is not None and d.titles.size == d.n_items
    assert d.titles[3] == f"Synthetic movie {d.item_ids[3]:04d}"


# ---- training instances --------------------------------------------------------------


def test_negatives_are_never_train_positives(small_data):
    d = small_data
    negatives = sample_negatives(d, 4, np.random.default_rng(0))
    assert negatives.shape == (d.n_train * 4,)
    assert not d.is_train_positive(np.repeat(d.train_users, 4), negatives).any()


def test_membership_both_paths_agree(small_data, monkeypatch):
    d = small_data
    rng = np.random.default_rng(1)
    users, items = rng.integers(0, d.n_users, 5000), rng.integers(0, d.n_items, 5000)
    dense = d.is_train_positive(users, items)
    monkeypatch.setattr("ncf_lib.dataset.DENSE_MASK_LIMIT", 0)
    sparse_data = NCFData(**{f: getattr(d, f) for f in d.__dataclass_fields__})
    assert sparse_data._train_matrix is None
    assert np.array_equal(dense, sparse_data.is_train_positive(users, items))
    assert dense.any()


def test_epoch_arrays_resampled_and_reproducible(small_data):
    d = small_data
    u1, i1, l1 = epoch_arrays(d, 4, np.random.default_rng(3))
    u2, i2, l2 = epoch_arrays(d, 4, np.random.default_rng(3))
    assert torch.equal(u1, u2) and torch.equal(i1, i2) and torch.equal(l1, l2)
    assert u1.shape == (d.n_train * 5,) and u1.dtype == torch.int64 and l1.dtype == torch.float32
    assert int(l1.sum()) == d.n_train
    pos = l1 == 1
    assert d.is_train_positive(u1[pos].numpy(), i1[pos].numpy()).all()
    assert not d.is_train_positive(u1[~pos].numpy(), i1[~pos].numpy()).any()
    rng = np.random.default_rng(3)
    first, second = epoch_arrays(d, 4, rng), epoch_arrays(d, 4, rng)
    assert not torch.equal(first[1], second[1])  # fresh negatives each epoch


def test_batches_cover_everything_in_order():
    a, b = torch.arange(10), torch.arange(10) * 2
    out = list(batches(a, b, batch_size=4))
    assert [len(x) for x, _ in out] == [4, 4, 2]
    assert torch.equal(torch.cat([y for _, y in out]), b)


# ---- real MovieLens-100K -------------------------------------------------------------


def test_real_movielens_100k(ml100k_dir):
    ratings = load_ratings(ml100k_dir)
    data = build_dataset(ratings)
    assert (data.n_users, data.n_items, len(ratings.ratings)) == (943, 1682, 100_000)
    assert data.test.users.size == 943 and data.validation.users.size == 943
    assert data.n_train == 100_000 - 2 * 943
    assert not data.is_train_positive(data.test.users, data.test.items).any()
    assert data.titles[0] == "Toy Story (1995)"


@pytest.mark.parametrize("dense_mask", [True, False])
def test_device_sampler_follows_the_same_rules(small_data, monkeypatch, dense_mask):
    d = small_data
    if not dense_mask:  # force the sorted-keys path used for very large catalogues
        monkeypatch.setattr("ncf_lib.scale.sampler.DENSE_MASK_LIMIT", 0)
    sampler = TorchSampler(d, 4, seed=3, device="cpu")
    assert (sampler.mask is None) != dense_mask
    users, items, labels = sampler.epoch()
    assert users.shape == (d.n_train * 5,) and items.dtype == torch.int64
    assert labels.dtype == torch.float32 and int(labels.sum()) == d.n_train
    pos = labels == 1
    assert d.is_train_positive(users[pos].numpy(), items[pos].numpy()).all()
    assert not d.is_train_positive(users[~pos].numpy(), items[~pos].numpy()).any()
    # every positive appears once, every user keeps 4 negatives per positive
    keys = np.sort(users[pos].numpy() * d.n_items + items[pos].numpy())
    assert np.array_equal(keys, d.train_keys)
    assert np.array_equal(
        np.bincount(users[~pos].numpy(), minlength=d.n_users),
        4 * np.bincount(d.train_users, minlength=d.n_users),
    )
    again = TorchSampler(d, 4, seed=3, device="cpu").epoch()
    assert all(torch.equal(a, b) for a, b in zip((users, items, labels), again))
    assert not torch.equal(sampler.epoch()[1], items)  # fresh negatives each epoch


def test_dataset_label_names_the_dataset_not_the_folder(tmp_path):
    assert dataset_label("ml-100k") == "ml-100k"
    assert dataset_label("synthetic:10x20x30") == "synthetic:10x20x30"
    assert dataset_label(tmp_path / "data" / "ml-100k") == "ml-100k"
    assert dataset_label("../shared/data/ml-100k/") == "ml-100k"


@pytest.mark.parametrize("ids", ["numbers", "names"])
def test_ratings_are_parsed_once_until_the_file_changes(tmp_path, monkeypatch, ids):
    path = tmp_path / "ratings.csv"
    name = (lambda i: f"U{i}x") if ids == "names" else str
    lines = [f"{name(u)},{10 + u % 7},{1 + u % 5},{978300000 + u}" for u in range(50)]
    path.write_text("userId,movieId,rating,timestamp\n" + "\n".join(lines) + "\n")
    first = parse_cache.read_ratings_cached(path)
    pd.testing.assert_frame_equal(first, read_ratings(path))
    assert (tmp_path / ".ratings.csv.parsed.npz").is_file()

    def parse(path):
        raise AssertionError("parsed again")

    with monkeypatch.context() as patch:
        patch.setattr(ratings_module, "read_ratings", parse)
        pd.testing.assert_frame_equal(parse_cache.read_ratings_cached(path), first)
    path.write_text(path.read_text().replace(",978300049\n", ",978300049\n" + lines[0] + "9\n"))
    changed = parse_cache.read_ratings_cached(path)
    assert len(changed) == 51  # the changed file, not the cache


def test_a_damaged_or_unwritable_cache_is_parsed_again(tmp_path, monkeypatch):
    path = tmp_path / "u.data"
    path.write_text("".join(f"{u}\t{u % 9 + 1}\t3\t{900 + u}\n" for u in range(1, 40)))
    expected = read_ratings(path)
    parse_cache.read_ratings_cached(path)
    (tmp_path / ".u.data.parsed.npz").write_bytes(b"not a zip")
    pd.testing.assert_frame_equal(parse_cache.read_ratings_cached(path), expected)
    (tmp_path / ".u.data.parsed.npz").unlink()

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(parse_cache, "atomic_write", refuse)
    pd.testing.assert_frame_equal(parse_cache.read_ratings_cached(path), expected)
    assert not (tmp_path / ".u.data.parsed.npz").exists()


def test_sparse_candidates_are_distinct_unseen_and_uniform():
    """One user who saw 40 of 100 items, drawn 20,000 times, beside one who saw 97 (the
    rounds give up on it and the dense sampler finishes it)."""
    rng = np.random.default_rng(0)
    seen = {0: rng.choice(100, 40, replace=False), 1: np.setdiff1d(np.arange(100), [5, 50, 95])}
    keys = np.sort(np.concatenate([u * 100 + items for u, items in seen.items()]))
    users = np.r_[np.zeros(20_000, dtype=np.int64), [1]]
    held = np.r_[np.full(20_000, seen[0][0]), [seen[1][0]]]
    got = candidates_module.sample_candidates_sparse(users, held, keys, 100, 3, rng)
    assert got.shape == (20_001, 4) and np.array_equal(got[:, 0], held)
    negatives = got[:, 1:]
    assert all(len(set(row)) == 3 for row in negatives.tolist())  # distinct in each row
    assert sorted(negatives[-1]) == [5, 50, 95]  # the only unseen items of user 1
    counts = np.bincount(negatives[:-1].ravel(), minlength=100)
    assert counts[seen[0]].sum() == 0  # never an item the user interacted with
    unseen = np.setdiff1d(np.arange(100), seen[0])
    expected = 20_000 * 3 / unseen.size  # 1000 per unseen item
    assert np.abs(counts[unseen] - expected).max() < 5 * np.sqrt(expected)  # about 4.6 sd


def test_large_catalogues_draw_candidates_by_rejection(small_ratings, monkeypatch):
    monkeypatch.setattr(candidates_module, "DENSE_CANDIDATE_ITEMS", 10)
    draw = candidates_module.large_catalogue_candidates
    data = build_dataset(small_ratings, num_ng_test=50, seed=7, draw=draw)
    again = build_dataset(small_ratings, num_ng_test=50, seed=7, draw=draw)
    assert data.test.candidates.shape == (data.n_users, 51)
    for eval_set in (data.test, data.validation):
        keys = eval_set.users[:, None] * data.n_items + eval_set.candidates[:, 1:]
        assert not np.isin(keys, data.train_keys).any()
        assert all(len(set(row)) == 51 for row in eval_set.candidates.tolist())
    assert np.array_equal(again.test.candidates, data.test.candidates)  # one seed, one draw
    dense = build_dataset(small_ratings, num_ng_test=50, seed=7)  # the default sampler
    assert not np.array_equal(dense.test.candidates, data.test.candidates)


def test_ids_and_histories_by_original_id(small_data):
    d = small_data
    user = d.user_index(str(d.user_ids[5]))
    assert user == 5 and d.item_index(str(d.item_ids[7])) == 7
    history = d.user_history(5)
    assert d.test.items[d.test.users == 5][0] in history
    assert d.validation.items[d.validation.users == 5][0] in history
    assert set(history) == set(d.train_items[d.train_users == 5]) | set(history[-2:])
    for bad in ("nobody", str(d.user_ids[-1] + 1), "1.5"):
        with pytest.raises(UnknownIdError, match=f"--user {bad} is not in"):
            d.user_index(bad, what="--user")
    with pytest.raises(UnknownIdError, match="item id 0 is not in"):
        d.item_index("0")


# ---- limits and defaults the numbers depend on -------------------------------------------


def _frame(rows):
    cols = ["user_id", "item_id", "rating", "timestamp"]
    return pd.DataFrame(rows, columns=cols).astype(RATING_DTYPES)


def test_build_dataset_defaults_are_the_papers_protocol(small_ratings):
    default = build_dataset(small_ratings)
    assert default.test.candidates.shape[1] == 100  # the held-out item and 99 sampled ones
    same = build_dataset(small_ratings, num_ng_test=99, seed=42)
    assert np.array_equal(default.test.candidates, same.test.candidates)
    assert np.array_equal(default.validation.candidates, same.validation.candidates)


def test_without_validation_the_second_latest_item_trains(small_ratings):
    pairs = small_ratings.ratings.drop_duplicates(["user_id", "item_id"])
    with_val = build_dataset(small_ratings, num_ng_test=5)
    without = build_dataset(small_ratings, num_ng_test=5, validation=False)
    assert without.validation is None
    assert without.n_train == len(pairs) - without.test.users.size
    assert with_val.n_train == without.n_train - with_val.validation.users.size


@pytest.mark.parametrize("duplicated_user", [1, 2])
def test_a_duplicated_pair_is_trained_on_once_and_never_when_held_out(duplicated_user):
    other = 3 - duplicated_user
    rows = [(duplicated_user, 9, 4, 1), (duplicated_user, 7, 4, 2), (duplicated_user, 9, 4, 3),
            (other, 5, 4, 1), (other, 6, 4, 2), (other, 5, 4, 3), (other, 8, 4, 4)]  # fmt: skip
    data = build_dataset(Ratings(_frame(rows), None, "x"), num_ng_test=1, validation=False)
    keys = data.train_users * data.n_items + data.train_items
    assert np.unique(keys).size == keys.size  # (other, 5) twice in the file, once in training
    assert data.n_train == 3  # (dup, 7), (other, 5), (other, 6); tested: (dup, 9), (other, 8)
    assert not data.is_train_positive(data.test.users, data.test.items).any()


@pytest.mark.parametrize("dense", [True, False])
def test_is_train_positive_answers_every_pair(small_ratings, monkeypatch, dense):
    if not dense:  # the sorted-keys path that large catalogues take
        monkeypatch.setattr(dataset_module, "DENSE_MASK_LIMIT", 0)
    data = build_dataset(small_ratings, num_ng_test=5)
    users, items = np.divmod(np.arange(data.n_users * data.n_items), data.n_items)
    train = set(zip(data.train_users.tolist(), data.train_items.tolist()))
    want = np.array([(u, i) in train for u, i in zip(users.tolist(), items.tolist())])
    assert np.array_equal(data.is_train_positive(users, items), want)


def test_a_dataset_with_a_single_user_to_test_builds():
    rows = [(1, 1, 4, 1), (1, 2, 4, 2), (1, 3, 4, 3), (2, 4, 4, 1), (3, 5, 4, 1)]
    data = build_dataset(Ratings(_frame(rows), None, "x"), num_ng_test=2)
    assert data.test.users.size == 1 and data.validation.users.size == 1 and data.n_train == 3


@pytest.mark.parametrize("rows, validation, message", [
    ([(1, 1, 4, 1), (2, 2, 4, 1)], False, "x: no user has 2 ratings; leave-one-out needs 2"),
    ([(1, 1, 4, 1), (1, 2, 4, 2), (2, 3, 4, 1)], True,
     "x: no user has 3 ratings, so there are no validation items; select the epoch on the test "
     "items instead (--select-on test, validation=False)"),
    ([(1, 1, 4, 1), (1, 1, 4, 2)], False,  # the only other row is a copy of the test pair
     "x: nothing is left to train on once the held-out items are out"),
])  # fmt: skip
def test_a_split_with_nothing_to_test_validate_or_train_is_refused(rows, validation, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_dataset(Ratings(_frame(rows), None, "x"), num_ng_test=1, validation=validation)


def test_too_many_test_negatives_names_the_user_and_the_count():
    rows = [(1, i, 4, i) for i in range(1, 6)] + [(2, 1, 4, 1), (2, 2, 4, 2)]
    with pytest.raises(ValueError, match=re.escape(
        "x: user 1 never interacted with only 0 of the 5 items, fewer than num_ng_test "
        "(--num-ng-test) 1; lower it")):  # fmt: skip
        build_dataset(Ratings(_frame(rows), None, "x"), num_ng_test=1)


@pytest.mark.parametrize("name, value, message", [
    ("num_ng_test", 0, "num_ng_test (--num-ng-test) must be at least 1, got 0"),
    ("seed", -1, "seed (--seed) must be a non-negative integer, got -1"),
])  # fmt: skip
def test_build_dataset_refuses_bad_settings(small_ratings, name, value, message):
    assert build_dataset(small_ratings, **{name: 1}) is not None  # the limit itself is fine
    with pytest.raises(ValueError, match=re.escape(message)):
        build_dataset(small_ratings, **{name: value})


def test_seed_zero_is_a_seed(small_ratings):
    assert build_dataset(small_ratings, seed=0).seed == 0


def test_the_stage_timings_add_up(small_ratings):
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    build_dataset(small_ratings, timings=timings)
    wall = time.perf_counter() - clock
    assert list(timings) == ["reindex", "split", "candidates"]
    assert all(t >= 0 for t in timings.values()) and sum(timings.values()) <= wall


def test_a_user_with_exactly_as_many_unseen_items_as_negatives_gets_all_of_them():
    n_items, k = 12, 5
    seen = np.arange(n_items - k)  # user 0 saw items 0..6; 7..11 are unseen
    keys = np.sort(np.concatenate([seen, n_items + np.arange(2)]))  # user 1 saw items 0, 1
    out = sample_candidates(np.array([0, 1]), np.array([0, 0]), keys, n_items, k,
                            np.random.default_rng(0))  # fmt: skip
    assert sorted(out[0, 1:].tolist()) == list(range(n_items - k, n_items))
    assert len(set(out[1, 1:].tolist())) == k and not set(out[1, 1:].tolist()) & {0, 1}


def test_sample_candidates_refuses_a_user_with_too_few_unseen_items():
    keys = np.arange(10)  # user 0 saw items 0..9 of 12
    with pytest.raises(ValueError, match="fewer than num_ng_test=3 unseen items"):
        sample_candidates(np.array([0]), np.array([0]), keys, 12, 3, np.random.default_rng(0))


def test_titles_follow_the_items_across_id_kinds():
    rows = [(1, "10", 4, 1), (1, "20", 4, 2), (1, "30", 4, 3), (2, "10", 4, 1), (2, "40", 4, 2)]
    ratings = pd.DataFrame(rows, columns=list(RATING_DTYPES)).astype({"item_id": object})
    movies = pd.DataFrame({"item_id": [30, 10, 20, 20], "title": ["C", "A", "B", "B again"],
                           "genres": ""})  # fmt: skip
    data = build_dataset(Ratings(ratings, movies, "x"), num_ng_test=1, validation=False)
    assert data.item_ids.tolist() == ["10", "20", "30", "40"]
    assert data.titles.tolist() == ["A", "B", "C", "(unknown title)"]
    untitled = build_dataset(Ratings(ratings, None, "x"), num_ng_test=1, validation=False)
    assert untitled.titles is None


def test_a_user_who_trained_on_every_item_has_no_negatives(small_data):
    # a split of one's own may train a user on every item (leave-one-out never does); the
    # message names that user's original id
    users = np.concatenate([np.full(small_data.n_items, 5), small_data.train_users])
    items = np.concatenate([np.arange(small_data.n_items), small_data.train_items])
    keys = np.unique(users * small_data.n_items + items)
    users, items = np.divmod(keys, small_data.n_items)
    data = replace(small_data, train_users=users, train_items=items, train_keys=keys)
    name = small_data.user_ids[5]
    with pytest.raises(ValueError, match=f"^user {name} has interacted with every item; no neg"):
        sample_negatives(data, 1, np.random.default_rng(0))


def test_negatives_are_uniform_over_each_users_other_items():
    """Chi-square over 20 epochs of one user's negatives: every item it did not train on is
    drawn equally often (false-alarm rate 1e-6 at the threshold below, fixed seed)."""
    rows = [(1, i, 4, i) for i in (3, 7, 11)] + [(2, i, 4, i) for i in range(18)]
    rows += [(3, 18, 4, 1), (3, 19, 4, 2)]
    data = build_dataset(Ratings(_frame(rows), None, "x"), num_ng_test=1, validation=False)
    rng = np.random.default_rng(0)
    draws = np.concatenate([sample_negatives(data, 50, rng) for _ in range(20)])
    mine = draws[np.tile(np.repeat(data.train_users, 50) == 0, 20)]  # user 1's draws
    allowed = np.setdiff1d(np.arange(data.n_items), data.train_items[data.train_users == 0])
    counts = np.bincount(mine, minlength=data.n_items)
    assert counts[np.setdiff1d(np.arange(data.n_items), allowed)].sum() == 0
    expected = mine.size / allowed.size
    chi2 = ((counts[allowed] - expected) ** 2 / expected).sum()
    assert chi2 < 60.0  # 17 degrees of freedom: P(chi2 > 60) < 1e-6


def test_the_sampler_runs_on_the_cpu_by_default(small_data):
    users, items, labels = NegativeSampler(small_data, 2, 0).epoch()
    assert users.device.type == items.device.type == labels.device.type == "cpu"
