"""ncf_lib.dataset: re-indexing, the leave-one-out split, evaluation candidates, titles, id lookup
and the data's fingerprint."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import ratings_file, ratings_frame, ratings_of

from ncf_lib import dataset as dataset_module
from ncf_lib.dataset import NCFData, build_dataset, leave_one_out, reindex, sample_candidates
from ncf_lib.errors import ConfigError, UnknownIdError
from ncf_lib.ratings import (
    RATING_DTYPES,
    Ratings,
    load_ratings,
)


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


def test_real_movielens_100k(ml100k_dir):
    ratings = load_ratings(ml100k_dir)
    data = build_dataset(ratings)
    assert (data.n_users, data.n_items, len(ratings.ratings)) == (943, 1682, 100_000)
    assert data.test.users.size == 943 and data.validation.users.size == 943
    assert data.n_train == 100_000 - 2 * 943
    assert not data.is_train_positive(data.test.users, data.test.items).any()
    assert data.titles[0] == "Toy Story (1995)"


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
    data = build_dataset(Ratings(ratings_frame(rows), None, "x"), num_ng_test=1, validation=False)
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
    data = build_dataset(Ratings(ratings_frame(rows), None, "x"), num_ng_test=2)
    assert data.test.users.size == 1 and data.validation.users.size == 1 and data.n_train == 3


@pytest.mark.parametrize("rows, validation, message", [
    ([(1, 1, 4, 1), (2, 2, 4, 1)], False, "x: no user has 2 ratings; leave-one-out needs 2"),
    ([(1, 1, 4, 1), (1, 2, 4, 2), (2, 3, 4, 1)], True,
     "x: no user has 3 ratings, so there are no validation items; select the epoch on the test "
     "items instead (train --select-on test; validation=False)"),
    ([(1, 1, 4, 1), (1, 1, 4, 2)], False,  # the only other row is a copy of the test pair
     "x: nothing is left to train on once the held-out items are out"),
])  # fmt: skip
def test_a_split_with_nothing_to_test_validate_or_train_is_refused(rows, validation, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_dataset(Ratings(ratings_frame(rows), None, "x"), num_ng_test=1, validation=validation)


def test_too_many_test_negatives_names_the_user_and_the_count():
    rows = [(1, i, 4, i) for i in range(1, 6)] + [(2, 1, 4, 1), (2, 2, 4, 2)]
    with pytest.raises(ValueError, match=re.escape(
        "x: user 1 never interacted with only 0 of the 5 items, fewer than num_ng_test "
        "(--num-ng-test) 1; lower it")):  # fmt: skip
        build_dataset(Ratings(ratings_frame(rows), None, "x"), num_ng_test=1)


@pytest.mark.parametrize("name, value, message", [
    ("num_ng_test", 0, "num_ng_test (--num-ng-test) must be at least 1, got 0"),
    ("seed", -1, "seed (--seed) must be an integer from 0 to 2**32 - 1, got -1"),
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


@pytest.mark.numbers
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


@pytest.mark.numbers
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


@pytest.mark.numbers
def test_the_fingerprint_holds_16_hex_digits_per_digest(small_ratings):
    from ncf_lib.dataset import fingerprint_of

    fingerprint = fingerprint_of(build_dataset(small_ratings))  # not a fixture's cached one
    for key in ("ids", "split"):
        assert re.fullmatch("[0-9a-f]{16}", fingerprint[key]), key


@pytest.mark.numbers
def test_an_unknown_user_is_named_as_a_user_by_default(small_data):
    with pytest.raises(LookupError, match="^user nobody is not in "):
        small_data.user_index("nobody")


@pytest.mark.numbers
def test_the_user_named_for_too_few_unseen_items_is_that_user():
    """Users 1 and 2 have room for 2 negatives among 6 items; user 3 has seen 5 of them."""
    rows = [(u, i, 4, i) for u, n in ((1, 3), (2, 3), (3, 5)) for i in range(1, n + 1)]
    rows += [(1, 6, 4, 9)]
    with pytest.raises(ValueError, match=re.escape(
        "x: user 3 never interacted with only 1 of the 6 items, fewer than num_ng_test "
        "(--num-ng-test) 2; lower it")):  # fmt: skip
        build_dataset(ratings_of(rows), num_ng_test=2, validation=False)


@pytest.mark.numbers
def test_no_ratings_and_no_negatives_are_refused_saying_why(small_ratings):
    with pytest.raises(ValueError, match="^x: no ratings$"):
        build_dataset(ratings_of([]))
    with pytest.raises(ValueError, match=re.escape(
        "num_ng_test (--num-ng-test) must be at least 1, got 0: with no sampled negatives the "
        "held-out item is always first and HR is 1")):  # fmt: skip
        build_dataset(small_ratings, num_ng_test=0)


@pytest.mark.numbers
def test_titles_follow_the_items_when_the_movies_file_is_in_another_order():
    rows = [(1, 30, 4, 1), (1, 10, 4, 2), (2, 20, 4, 1), (2, 30, 4, 2), (2, 40, 4, 3)]
    movies = pd.DataFrame({"item_id": [40, 99, 20, 10], "title": ["D", "Z", "B", "A"]})
    ratings = replace(ratings_of(rows), movies=movies.assign(genres=""))
    data = build_dataset(ratings, num_ng_test=1, validation=False)
    assert data.item_ids.tolist() == [10, 20, 30, 40]
    assert data.titles.tolist() == ["A", "B", "(unknown title)", "D"]


def test_one_named_id_among_integers_keeps_the_titles(tmp_path):
    from ncf_lib.dataset import build_dataset

    folder = tmp_path / "ml"
    folder.mkdir()
    rows = [(u, i, 4, 10 * u + i) for u in range(1, 31) for i in range(u % 5 + 1, u % 5 + 12)]
    rows += [(1, "x9", 4, 99)]
    ratings_file(folder / "ratings.csv", rows, header="userId,movieId,rating,timestamp")
    titles = "\n".join(f"{i},Movie {i} (2000),Drama" for i in range(1, 17))
    (folder / "movies.csv").write_text("movieId,title,genres\n" + titles + "\n")
    data = build_dataset(load_ratings(folder), num_ng_test=3)
    named = dict(zip(data.item_ids.tolist(), data.titles.tolist()))
    assert named["3"] == "Movie 3 (2000)" and named["x9"] == "(unknown title)"


@pytest.mark.parametrize("seed", [-1, 2**32, 2**64])
def test_a_seed_out_of_range_is_refused(small_ratings, seed):
    with pytest.raises(ConfigError, match=f"from 0 to 2\\*\\*32 - 1, got {seed}$"):
        build_dataset(small_ratings, seed=seed)
