"""ncf_lib.use.titles: movies found by title; titles shown escaped on a terminal and safe in a
spreadsheet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import QUIET, dense_rows, ratings_file

from ncf_lib.cli import main
from ncf_lib.errors import UnknownIdError
from ncf_lib.use.titles import match_title, spreadsheet_safe, visible


def test_title_matching():
    titles = np.array(["Toy Story (1995)", "Heat (1995)", "Hamlet (1996)", "Hamlet (1996)"])
    ids = np.array([1, 6, 10, 11])
    assert match_title("  toy STORY   (1995) ", titles, ids) == 0
    with pytest.raises(UnknownIdError, match=r"closest: Toy Story \(1995\)"):
        match_title("Toy Stori (1995)", titles, ids)
    with pytest.raises(UnknownIdError, match=r"ambiguous.*id 10.*id 11"):
        match_title("hamlet (1996)", titles, ids)
    with pytest.raises(UnknownIdError, match="no titles"):
        match_title("Heat (1995)", None, ids)


EVIL = {
    1: "Red\x1b[31m (1999)",  # a colour sequence
    2: "Title\x1b]0;pwned\x07 (2000)",  # OSC: sets the terminal's title
    3: "\u202eevil (2001)",  # right-to-left override
    4: '=HYPERLINK("http://x") (2002)',
    5: "+1+1 (2003)",
    6: "@SUM(A1) (2004)",
    7: "-2-2 (2005)",
}


def _evil_dataset(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    ratings_file(folder / "ratings.csv", dense_rows(40, items_per_user=10))
    titles = {i: EVIL.get(i, f"Movie {i} (1990)") for i in range(1, 41)}
    frame = pd.DataFrame({"movieId": list(titles), "title": list(titles.values()), "genres": "x"})
    frame.to_csv(folder / "movies.csv", index=False)
    assert main(["train", "--dataset", str(folder), "--epochs", "1", "--model", "gmf", *QUIET,
                 "--num-ng-test", "19", "--out", str(tmp_path / "ck")]) == 0  # fmt: skip
    return next((tmp_path / "ck").glob("*.pt"))


def _acts(text: str) -> bool:
    return any(c in text for c in ("\x1b", "\x07", "\u202e"))


def test_titles_and_typed_text_are_printed_escaped(tmp_path, capsys):
    ckpt = _evil_dataset(tmp_path)
    capsys.readouterr()
    runs = [
        ["recommend", str(ckpt), "--user", "1", "-k", "40"],
        ["recommend", str(ckpt), "--like", EVIL[1], "--like", EVIL[3], "-k", "40"],
        ["similar", str(ckpt), "--item", EVIL[2], "-k", "39"],
    ]
    for argv in runs:
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert not _acts(out), out
    assert "\\x1b[31m" in out and "\\u202eevil" in out  # shown, escaped
    for argv in (["recommend", str(ckpt), "--like", "Nope\x1b[2J"],
                 ["recommend", str(ckpt), "--user", "\u202e7"]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert not _acts(err) and err.count("\n") == 1 and ("\\x1b[2J" in err or "\\u202e" in err)


def test_exported_csv_cells_cannot_run_as_formulas(tmp_path, capsys):
    ckpt = _evil_dataset(tmp_path)
    assert main(["export", str(ckpt), str(tmp_path / "emb")]) == 0
    items = pd.read_csv(tmp_path / "emb" / "items.csv").set_index("item_id")["title"]
    for i in (4, 5, 6, 7):
        assert items[i] == "'" + EVIL[i]
    assert items[1] == EVIL[1] and items[10] == "Movie 10 (1990)"
    with np.load(tmp_path / "emb" / "embeddings.npz") as saved:  # the text as it is
        assert EVIL[4] in saved["titles"].tolist()


@pytest.mark.parametrize("text, safe", [("=1", "'=1"), ("\tx", "'\tx"), ("a=b", "a=b"), ("", "")])
def test_spreadsheet_safe_prefixes_only_formula_starts(text, safe):
    assert spreadsheet_safe(text) == safe


@pytest.mark.parametrize("text", ["\x1b[0m", "a\u2066b", "\x9b1m", "x\ny"])
def test_visible_escapes_what_acts_and_keeps_the_rest(text):
    shown = visible(f"Amélie {text} 東京")
    assert not any(ch in shown for ch in text if not ch.isalnum() and ch != "[")
    assert shown.startswith("Amélie ") and shown.endswith(" 東京")
