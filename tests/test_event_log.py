"""ncf_lib.event_log: TensorBoard's event files written in the training thread; a write that
fails ends the log with one warning, never the run."""

from __future__ import annotations

import warnings

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboardX.record_writer import RecordWriter

from ncf_lib.errors import WriteError
from ncf_lib.event_log import EventLog


def _scalars(folder, tag):
    events = EventAccumulator(str(folder))
    events.Reload()
    return [(e.step, round(e.value, 6)) for e in events.Scalars(tag)]


def test_what_is_logged_is_read_back_by_tensorboard_as_it_goes(tmp_path):
    log = EventLog(tmp_path / "run")
    log.scalars({"epoch/loss": 0.5, "epoch/test_hr": 0.25}, step=1)
    assert _scalars(tmp_path / "run", "epoch/loss") == [(1, 0.5)]  # before close: flushed
    log.scalars({"epoch/loss": 0.25}, step=2)
    log.hyperparameters({"lr": 0.001, "model": "GMF"}, {"best/test_hr": 0.75}, step=2)
    log.close()
    assert _scalars(tmp_path / "run", "epoch/loss") == [(1, 0.5), (2, 0.25)]
    assert _scalars(tmp_path / "run" / "hparams", "best/test_hr") == [(2, 0.75)]


@pytest.mark.parametrize("inside", ["", "sub"])
def test_a_folder_that_cannot_be_written_is_an_error_naming_it(tmp_path, inside):
    """The log's folder is a file, or is under one."""
    (tmp_path / "logs").write_text("not a folder")
    folder = tmp_path / "logs" / inside if inside else tmp_path / "logs"
    with pytest.raises(WriteError, match=f"^{folder}: cannot write TensorBoard logs there"):
        EventLog(folder)


@pytest.mark.parametrize("after", [1, 2])
def test_a_disk_that_fills_up_warns_once_and_stops_logging(tmp_path, monkeypatch, after):
    """The ``after``-th record onwards cannot be written: one warning naming the folder; the
    calls after it do nothing and raise nothing."""
    write, writes = RecordWriter.write, []

    def filling(self, data):
        writes.append(data)
        if len(writes) > after:
            raise OSError(28, "No space left on device")
        write(self, data)

    monkeypatch.setattr(RecordWriter, "write", filling)
    log = EventLog(tmp_path / "run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            log.scalars({"epoch/loss": 1.0}, step)
        log.hyperparameters({"lr": 0.1}, {"best/hr": 0.5}, step=2)
        log.close()
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert message.startswith(f"TensorBoard logs in {tmp_path / 'run'} are incomplete (")
    assert "No space left on device" in message
    assert len(writes) == after + 1  # nothing tried after the failure
    assert not (tmp_path / "run" / "hparams").exists()
