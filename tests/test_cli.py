"""Command-line tests on generated data: output format and one-line errors."""

from __future__ import annotations

import subprocess
import sys

from ncf_lib.cli import main

SAMPLE = "synthetic:120x200x3000"


def test_info_prints_every_key(capsys):
    assert main(["info", "--dataset", SAMPLE]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    for key in ["users", "items", "interactions", "train", "test users",
                "test candidates per user", "density", "seconds load", "seconds candidates"]:
        assert key in lines
    assert lines["users"] == "120" and lines["interactions"] == "3,000"
    assert lines["test candidates per user"] == "100"


def test_info_on_a_ratings_file(tmp_path, capsys):
    path = tmp_path / "ratings.dat"
    rows = [(1, i) for i in range(1, 6)] + [(2, i) for i in range(3, 8)]
    path.write_text("".join(f"{u}::{i}::4::{u * 100 + i}\n" for u, i in rows))
    assert main(["info", "--dataset", str(path), "--num-ng-test", "2"]) == 0
    out = capsys.readouterr().out
    assert "items: 7" in out and "test candidates per user: 3" in out


def test_unknown_dataset_is_one_line_exit_2():
    proc = subprocess.run([sys.executable, "-m", "ncf_lib", "info", "--dataset", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr


def test_malformed_file_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "ratings.dat"
    path.write_text("1::2::3::4\n1::zz::3::4\n")
    assert main(["info", "--dataset", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and str(path) in err
