"""ncf_lib.scale.parse_cache: a ratings file parsed once until it changes; a damaged cache is
parsed again."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from ncf_lib import ratings as ratings_module
from ncf_lib.ratings import read_ratings
from ncf_lib.scale import parse_cache


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


@pytest.mark.parametrize("edit", ["a rating", "an id"])
def test_a_file_edited_in_place_with_its_size_and_time_kept_is_parsed_again(tmp_path, edit):
    """Same length, same modification time (as ``touch -r`` or a fast editor leaves it):
    the content decides."""
    path = tmp_path / "u.data"
    path.write_text("".join(f"{u}\t{u % 9 + 1}\t3\t{900 + u}\n" for u in range(1, 40)))
    parse_cache.read_ratings_cached(path)
    stat = path.stat()
    text = path.read_text()
    old, new = ("1\t2\t3\t901", "1\t2\t5\t901") if edit == "a rating" else ("1\t2\t3", "1\t3\t3")
    path.write_text(text.replace(old, new, 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    pd.testing.assert_frame_equal(parse_cache.read_ratings_cached(path), read_ratings(path))
