"""ncf_lib.ratings: every MovieLens format and plain CSV read into one table, ids and timestamps
kept exactly, bad lines named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import dense_rows, one_line_error, ratings_file

from ncf_lib.cli import main
from ncf_lib.ratings import (
    RATING_DTYPES,
    DataFormatError,
    find_ratings_file,
    load_ratings,
    read_movies,
    read_ratings,
)


def _write(path, text):
    path.write_text(text)
    return path


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


def test_synthetic_by_name():
    loaded = load_ratings("synthetic:50x80x1000", seed=2)
    assert len(loaded.ratings) == 1000 and loaded.movies is not None


def test_ids_beyond_int32_stay_distinct(tmp_path, capsys):
    big = [2**31 + 7 * u for u in range(60)]  # int32 would merge these into one id
    path = ratings_file(tmp_path / "r.csv", dense_rows(60, user_ids=big))
    frame = read_ratings(path)
    assert frame["user_id"].dtype == np.int64 and frame["user_id"].nunique() == 60
    assert main(["info", "--dataset", str(path), "--num-ng-test", "5"]) == 0
    assert "users: 60" in capsys.readouterr().out


def test_fractional_ids_are_an_error_naming_the_line(tmp_path, capsys):
    rows = dense_rows(5)
    rows[3] = (1.7, 2, 4, 5)
    path = ratings_file(tmp_path / "r.csv", rows)
    one_line_error(["info", "--dataset", str(path)], capsys, "line 4", "'1.7'", "not an integer")


def test_string_ids_with_and_without_header_recognised_by_content(tmp_path):
    rows = [(f"U{u}x", f"B{i:04d}", 5, 978300000 + k) for k, (u, i) in enumerate(
        [(1, 1), (1, 2), (1, 3), (2, 1), (2, 4), (2, 5)])]  # fmt: skip
    plain = read_ratings(ratings_file(tmp_path / "a.csv", rows))
    headed = read_ratings(ratings_file(tmp_path / "b.csv", rows, "user,item,rating,ts"))
    assert len(plain) == 6 and len(headed) == 6  # no data row taken for a header
    assert plain["user_id"].tolist()[0] == "U1x" and plain["item_id"].tolist()[-1] == "B0005"
    pd.testing.assert_frame_equal(plain, headed)


def test_timestamps_keep_their_order_exactly(tmp_path):
    rows = [(1, 1, 4, "100"), (1, 2, 4, "1e30"), (1, 3, 4, "200"),  # 1e30 is the latest
            (2, 1, 4, "1000000000.9"), (2, 2, 4, "1000000000.1"), (2, 3, 4, "5")]  # fmt: skip
    frame = read_ratings(ratings_file(tmp_path / "t.csv", rows))
    assert frame["timestamp"].dtype == np.float64
    latest = frame.loc[frame.groupby("user_id")["timestamp"].idxmax(), "item_id"].tolist()
    assert latest == [2, 1]  # user 2: .9 is after .1, whatever the file order
    whole = read_ratings(ratings_file(tmp_path / "w.csv", [(1, 1, 4, 5), (1, 2, 4, 7)]))
    assert whole["timestamp"].dtype == np.int64


@pytest.mark.parametrize("bad", ["inf", "nan", "-inf", "1e400"])
def test_a_non_finite_timestamp_names_its_line(tmp_path, capsys, bad):
    path = ratings_file(tmp_path / "t.csv", [(1, 1, 4, 10), (1, 2, 4, bad), (1, 3, 4, 30)])
    one_line_error(["info", "--dataset", str(path)], capsys, str(path), "line 2", "finite")


def test_a_folder_with_two_ratings_files_says_so(tmp_path, capsys):
    ratings_file(tmp_path / "ratings.csv", dense_rows(5))
    (tmp_path / "ratings.dat").write_text("1::1::4::1\n")
    one_line_error(["info", "--dataset", str(tmp_path)], capsys, "ratings.csv", "ratings.dat",
                    "several ratings files")  # fmt: skip


def test_movies_csv_in_windows_1252_and_with_named_ids(tmp_path):
    folder = tmp_path / "ml"
    folder.mkdir()
    ratings_file(folder / "ratings.csv", [(1, "B0001", 4, 1), (1, "B0002", 4, 2)],
                  header="userId,movieId,rating,timestamp")  # fmt: skip
    (folder / "movies.csv").write_bytes(
        "movieId,title,genres\nB0001,Caf\xe9 (1999),Drama\nB0002,Na\xefve (2001),Comedy\n"
        .encode("cp1252")
    )  # fmt: skip
    ratings = load_ratings(folder)
    assert ratings.movies["title"].tolist() == ["Café (1999)", "Naïve (2001)"]
    assert ratings.movies["item_id"].tolist() == ["B0001", "B0002"]


def test_movielens_own_formats_have_integer_ids(tmp_path, capsys):
    dat = tmp_path / "ratings.dat"
    dat.write_text("1::10::4::100\n2::x7::4::101\n3::10::5::102\n")
    one_line_error(["info", "--dataset", str(dat)], capsys, "line 2", "'x7' is not an integer")
    udata = tmp_path / "u.data"
    udata.write_text("1\t10\t4\t100\nU2\t10\t4\t101\n")
    one_line_error(["info", "--dataset", str(udata)], capsys, "line 2", "'U2'")


def test_info_says_which_kind_each_id_column_is(tmp_path, capsys):
    rows = dense_rows(20, items_per_user=8, user_ids=[f"u{i:03d}" for i in range(20)])
    path = ratings_file(tmp_path / "r.csv", rows)
    assert main(["info", "--dataset", str(path), "--num-ng-test", "5"]) == 0
    out = capsys.readouterr().out
    assert "user ids: names" in out and "item ids: integers" in out


def test_quoted_fields_and_gzip_are_read(tmp_path):
    import gzip

    text = 'user,item,rating,timestamp\n"Smith, J",1,4,10\n"Smith, J",2,5,11\nK,1,3,12\n'
    plain = tmp_path / "q.csv"
    plain.write_text(text)
    frame = read_ratings(plain)
    assert frame["user_id"].tolist() == ["Smith, J", "Smith, J", "K"]
    packed = tmp_path / "ratings.csv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    pd.testing.assert_frame_equal(read_ratings(packed), frame)


def _u_data(folder, users):
    folder.mkdir(parents=True)
    rows = dense_rows(users, items_per_user=8)
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    return folder


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_a_path_named_like_a_known_dataset_is_said_to_be_unused(tmp_path, monkeypatch, kind):
    """``ml-100k`` names the download; a ``./ml-100k`` folder or file in the working directory
    is not read, and a note says so and how to use it instead."""
    _u_data(tmp_path / "cache" / "ml-100k", users=30)
    monkeypatch.chdir(tmp_path)
    if kind == "folder":
        _u_data(tmp_path / "ml-100k", users=20)
    else:
        (tmp_path / "ml-100k").write_text("1,1,4,1\n")
    with pytest.warns(UserWarning, match=f"the {kind} ml-100k here is not used") as caught:
        ratings = load_ratings("ml-100k", tmp_path / "cache")
    assert ratings.ratings["user_id"].nunique() == 30  # the download's
    message = str(caught[0].message)
    assert "./ml-100k" in message and str(tmp_path / "cache") in message


def test_the_command_line_prints_the_note_in_one_line(tmp_path, monkeypatch, capsys):
    _u_data(tmp_path / "cache" / "ml-100k", users=30)
    _u_data(tmp_path / "ml-100k", users=20)
    monkeypatch.chdir(tmp_path)
    argv = ["info", "--dataset", "ml-100k", "--data-dir", "cache", "--num-ng-test", "9"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("note: 'ml-100k' names the downloaded MovieLens dataset")
    assert captured.err.count("\n") == 1 and "users: 30" in captured.out
    assert main(["info", "--dataset", "./ml-100k", "--num-ng-test", "9"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "users: 20" in captured.out


BAD_MOVIES = [
    ("movies.csv", "", "the file is empty"),
    ("movies.csv", "movieId,title\n1,A\n", "line 1: 2 columns"),
    ("movies.csv", "movieId,title,genres,year\n1,A,Drama,1999\n", "line 1: 4 columns"),
    ("movies.csv", "movieId,title,genres\n", "no movies in it"),
    ("movies.csv", "movieId,title,genres\n1,A,Drama\n2,B,Drama,extra,more\n", "line 3"),
    ("movies.dat", "1::A (1999)::Drama\n2 A (1999) Drama\n", "line 2: '2 A (1999) Drama'"),
    ("movies.dat", "\n\n", "no movies in it"),
    ("u.item", "", "the file is empty"),
    ("u.item", "1\n2\n", "line 1: one column"),
]


@pytest.mark.parametrize("name, text, says", BAD_MOVIES)
def test_a_malformed_movies_file_is_one_line_naming_it(tmp_path, capsys, name, text, says):
    """Empty, the wrong number of columns, a short line: named with the file, the line where
    it is known, and the layout expected; nothing is trained."""
    ratings_file(tmp_path / "ratings.csv", dense_rows(30, items_per_user=10))
    (tmp_path / name).write_text(text)
    with pytest.raises(DataFormatError, match=f"^{tmp_path / name}"):
        read_movies(tmp_path)
    one_line_error(["info", "--dataset", str(tmp_path), "--num-ng-test", "9"], capsys,
                   str(tmp_path / name), says, "expected")  # fmt: skip


@pytest.mark.parametrize(
    "name, text",
    [
        ("movies.csv", "movieId,title,genres\n1,A,Drama\n2,B,Drama\n1,C,Comedy\n2,D,x\n"),
        ("movies.dat", "1::A::Drama\n2::B::Drama\n1::C::Comedy\n2::D::x\n"),
    ],
)
def test_repeated_movie_ids_are_reported_with_the_rule_applied(tmp_path, capsys, name, text):
    (tmp_path / name).write_text(text)
    with pytest.warns(UserWarning, match="2 rows repeat a movie id given above them \\(the first"):
        movies = read_movies(tmp_path)
    assert movies["title"].tolist() == ["A", "B"]  # the first row of each id
    ratings_file(tmp_path / "ratings.csv", dense_rows(30, items_per_user=10))
    assert main(["info", "--dataset", str(tmp_path), "--num-ng-test", "9"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"note: {tmp_path / name}: 2 rows repeat") and err.count("\n") == 1
