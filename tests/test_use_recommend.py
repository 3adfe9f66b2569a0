"""ncf_lib.use.recommend: recommendations for a known or new user, history excluded."""

from __future__ import annotations

from conftest import SAMPLE, run_train

from ncf_lib.cli import main
from ncf_lib.ratings import load_ratings


def test_recommend_excludes_the_users_history(tmp_path, capsys):
    assert run_train(tmp_path, "--model", "gmf") == 0
    ckpt = str(tmp_path / "ck" / "synthetic_120x200x3000-gmf.pt")
    capsys.readouterr()
    assert main(["recommend", ckpt, "--user", "7", "-k", "200"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[2:]
    shown = {int(line.split()[1]) for line in lines}
    ratings = load_ratings(SAMPLE).ratings
    rated = set(ratings.loc[ratings["user_id"] == 7, "item_id"])
    assert shown and not shown & rated
    assert len(shown) == 200 - len(rated)


def test_recommend_for_a_new_user_by_title(ml_checkpoint, capsys):
    capsys.readouterr()
    argv = ["recommend", str(ml_checkpoint), "--like", "synthetic movie 0001",
            "--like-ids", "2", "3", "-k", "5"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "a new user who likes Synthetic movie 0001; Synthetic movie 0002; Synthetic" in out
    shown = [line.split()[1] for line in out.splitlines()[2:]]
    assert len(shown) == 5 and not {"1", "2", "3"} & set(shown)
    assert main(argv) == 0 and capsys.readouterr().out == out  # same seed, same list
    assert main(["recommend", str(ml_checkpoint), "--like", "Synthetic movie 9999"]) == 2
    assert "closest" in capsys.readouterr().err
