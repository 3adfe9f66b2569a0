"""ncf_lib.files: written files follow the umask; a full disk is one line naming the path."""

from __future__ import annotations

import os

from conftest import one_line_error, train_argv

from ncf_lib.cli import main
from ncf_lib.study.runner import run_grid


def test_written_files_follow_the_umask(tmp_path, grid_csv):
    old = os.umask(0o027)
    try:
        assert main(train_argv(tmp_path)) == 0
        ckpt = next((tmp_path / "ck").glob("*.pt"))
        _, specs, data, full = grid_csv
        run_grid(specs[:1], data, tmp_path / "res" / "results.csv", full=full)
    finally:
        os.umask(old)
    assert ckpt.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "res" / "results.csv").stat().st_mode & 0o777 == 0o640


def test_a_full_disk_is_one_line_naming_the_path(tmp_path, full_disk, capsys):
    ckpt_dir = tmp_path / "ck"
    assert main(train_argv(tmp_path)) == 0
    ckpt = next(ckpt_dir.glob("*.pt"))
    out = one_line_error(train_argv(tmp_path)[:-1] + [str(full_disk / "out")], capsys,
                          str(full_disk / "out"), "No space left")  # fmt: skip
    left = [p.name for p in (full_disk / "out").iterdir() if not p.name.endswith(".lock")]
    assert left == []  # nothing half-written left behind (the lock is not an output)
    del out
    one_line_error(["evaluate", str(ckpt), "--per-user", str(full_disk / "out" / "u.csv")],
                    capsys, "--per-user", "No space left")  # fmt: skip
    one_line_error(["export", str(ckpt), str(full_disk / "out" / "emb")], capsys,
                    "No space left")  # fmt: skip
