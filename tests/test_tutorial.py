"""ncf_lib.tutorial: the notebooks' settings (NCF_SAMPLE, NCF_DATASET, NCF_EPOCHS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ncf_lib.dataset import build_dataset
from ncf_lib.errors import ConfigError
from ncf_lib.tutorial import SAMPLE_DATASET, settings


@pytest.mark.parametrize("value, sample", [("1", True), ("yes", True), ("0", False), ("", False)])
def test_settings_switch_on_ncf_sample(monkeypatch, value, sample):
    monkeypatch.setenv("NCF_SAMPLE", value)
    monkeypatch.delenv("NCF_DATASET", raising=False)
    s = settings("ml-1m", epochs=7, sample_epochs=2)
    assert s.sample is sample
    assert s.dataset == (SAMPLE_DATASET if sample else "ml-1m")
    assert s.epochs == (2 if sample else 7)


def test_settings_default_to_movielens_100k(monkeypatch):
    monkeypatch.delenv("NCF_SAMPLE", raising=False)
    monkeypatch.delenv("NCF_DATASET", raising=False)
    assert (settings().dataset, settings().epochs) == ("ml-100k", 10)


@pytest.mark.parametrize("name", ["ml-100k", "synthetic:50x40x600"])
def test_ncf_dataset_names_a_dataset(monkeypatch, name):
    monkeypatch.setenv("NCF_DATASET", name)
    assert settings("ml-1m").dataset == name


@pytest.mark.parametrize("given", ["data/ml", "./data/../data/ml", "ABSOLUTE"])
def test_a_relative_ncf_dataset_is_read_from_where_it_was_set(tmp_path, monkeypatch, given):
    """Not from ``notebooks/``, where the kernel runs: from ``$PWD``, the shell's folder."""
    (tmp_path / "data" / "ml").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.setenv("PWD", str(tmp_path))
    monkeypatch.setenv("NCF_DATASET", str(tmp_path / "data/ml") if given == "ABSOLUTE" else given)
    assert Path(settings().dataset).resolve() == tmp_path / "data" / "ml"


@pytest.mark.parametrize("given", ["data/none", "ml-10m"])
def test_a_missing_ncf_dataset_is_named_with_where_it_was_looked_for(tmp_path, monkeypatch, given):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PWD", str(tmp_path))
    monkeypatch.setenv("NCF_DATASET", given)
    with pytest.raises(ConfigError) as caught:
        settings()
    message = str(caught.value)
    assert message.startswith(f"NCF_DATASET={given!r} is neither a known dataset")
    assert f"read from {tmp_path}" in message and "--dataset" not in message


@pytest.mark.parametrize("epochs", [0, 2.5, "10", True])
def test_settings_refuse_a_bad_epoch_count(monkeypatch, epochs):
    monkeypatch.delenv("NCF_SAMPLE", raising=False)
    with pytest.raises(ConfigError, match=f"EPOCHS = {epochs!r}: expected a whole number"):
        settings(epochs=epochs)


@pytest.mark.parametrize("value, sample", [("off", False), ("n", False), ("ON", True), ("y", True)])
def test_ncf_sample_reads_the_usual_words(monkeypatch, value, sample):
    from ncf_lib.tutorial import settings

    monkeypatch.setenv("NCF_SAMPLE", value)
    assert settings().sample is sample


def test_ncf_sample_refuses_anything_else(monkeypatch):
    from ncf_lib.errors import ConfigError
    from ncf_lib.tutorial import settings

    monkeypatch.setenv("NCF_SAMPLE", "maybe")
    with pytest.raises(ConfigError, match="NCF_SAMPLE='maybe': expected 1, true"):
        settings()


def test_movies_and_titles_fall_back_to_ids_for_ratings_only_data(small_ratings, capsys):
    from dataclasses import replace

    from ncf_lib.tutorial import movies, titles

    assert movies(small_ratings) is small_ratings.movies
    assert capsys.readouterr().out == ""
    bare = replace(small_ratings, movies=None)
    table = movies(bare)
    assert "has no movies file: movies are named by their ids" in capsys.readouterr().out
    rated = np.unique(bare.ratings["item_id"])
    assert table["item_id"].tolist() == rated.tolist()
    assert table["title"].tolist() == [f"movie {i}" for i in rated]
    data = build_dataset(bare, seed=7)
    assert data.titles is None
    assert titles(data).tolist() == [f"movie {i}" for i in data.item_ids]
    assert titles(build_dataset(small_ratings, seed=7))[0] != f"movie {data.item_ids[0]}"
