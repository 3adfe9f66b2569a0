"""ncf_lib.scale.distributed: training under torchrun (DDP, gloo on CPU) equals one process, and
never hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from ncf_lib.dataset import build_dataset
from ncf_lib.errors import ConfigError
from ncf_lib.ratings import load_ratings
from ncf_lib.scale.distributed import Ranks, check_supported, shard
from ncf_lib.train import TrainConfig

SCRIPT = REPO / "tests" / "ddp_fit.py"


METRICS = ["loss", "val_hr", "val_ndcg", "test_hr", "test_ndcg"]


def _torchrun(n: int, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node n ARGS``; on a timeout its whole process
    group is killed (the ranks too, not only the launcher) before the test fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n),
               "--standalone", *args]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def _fit(tmp_path, n: int, model: str, batch: int) -> dict:
    out = tmp_path / f"{model}-{n}.pt"
    if n == 1:  # a plain process: no torchrun, no process group
        done = subprocess.run([sys.executable, str(SCRIPT), str(out), model, str(batch)],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    else:
        done = _torchrun(n, str(SCRIPT), str(out), model, str(batch))
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out, weights_only=False)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gmf", "neumf"])
def test_two_processes_train_what_one_process_trains(tmp_path, model):
    """Global batch 256 in two ranks of 128 rows = one process with batch 256, up to the
    order of floating-point sums (the epochs here have an even number of rows, so the last
    batch splits evenly and no row is left out)."""
    one, two = _fit(tmp_path, 1, model, 256), _fit(tmp_path, 2, model, 256)
    for key, value in one["state"].items():
        torch.testing.assert_close(two["state"][key], value, rtol=0, atol=1e-6)
    for metric in METRICS:
        torch.testing.assert_close(
            torch.tensor(two["history"][metric].to_numpy()),
            torch.tensor(one["history"][metric].to_numpy()),
            rtol=0,
            atol=1e-6,
        )


def test_shards_are_equal_disjoint_and_cut_to_a_multiple_of_the_ranks():
    rows = torch.arange(1003)  # 3 full batches of 300 and 103 rows: 102 kept, 34 per rank
    global_batches = [(rows[i : i + 300],) for i in range(0, 1003, 300)]
    shares = [list(shard(global_batches, Ranks(r, 3, r))) for r in range(3)]
    assert [len(s) for s in shares] == [4, 4, 4]  # every rank makes every step
    for step in range(4):
        sizes = {len(s[step][0]) for s in shares}
        assert sizes == ({100} if step < 3 else {34})
        together = torch.cat([s[step][0] for s in shares])
        assert torch.equal(together, rows[step * 300 : step * 300 + together.numel()])
    with pytest.raises(ConfigError, match="does not divide"):
        check_supported(TrainConfig(batch_size=301), Ranks(0, 2, 0))


@pytest.mark.slow
def test_an_uneven_epoch_does_not_hang_and_only_rank_zero_writes(tmp_path):
    """Through the command line: rows that do not divide into the ranks, one checkpoint,
    one copy of the output."""
    data = build_dataset(load_ratings("synthetic:91x300x1821"), seed=42)
    assert (data.n_train * 5) % 256 % 2 == 1  # the last batch has an odd number of rows
    done = _torchrun(2, "-m", "ncf_lib", "train", "--dataset", "synthetic:91x300x1821",
                     "--model", "gmf", "--epochs", "2", "--out", str(tmp_path / "ckpt"),
                     "--no-log", "--no-progress", timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch 002  loss") == 1, done.stdout  # printed by rank 0 only
    assert len(list((tmp_path / "ckpt").glob("*.pt"))) == 1


@pytest.mark.slow
def test_a_failing_rank_stops_the_run_with_its_error(tmp_path):
    """Rank 1 fails after its first epoch; rank 0 must not wait for it in a collective
    (torchrun stops it; a hang would end in _torchrun's timeout and fail the test)."""
    done = _torchrun(2, str(SCRIPT), str(tmp_path / "x.pt"), "gmf", "256", "1", timeout=240)
    assert done.returncode != 0
    assert "rank 1 fails on purpose" in done.stderr
    assert not (tmp_path / "x.pt").exists()
