"""A run's TensorBoard log (tensorboardX's event format), written in the training thread: a
full disk or a removed folder ends the log with one warning, and never the run or its result.

TensorBoard reads the folder as it is written: ``tensorboard --logdir FOLDER``.
"""

from __future__ import annotations

import socket
import time
import warnings
from pathlib import Path

from tensorboardX.proto.event_pb2 import Event
from tensorboardX.record_writer import RecordWriter
from tensorboardX.summary import hparams, scalar

from ncf_lib.errors import WriteError


class EventLog:
    """One event file in ``folder`` (created), flushed after every record.

    Raises:
        WriteError: the folder cannot be created or written to (before any training).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}"
        self._file: RecordWriter | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._file = RecordWriter(str(self.folder / name))
            self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        except OSError as err:
            self.close()
            raise WriteError(
                f"{self.folder}: cannot write TensorBoard logs there: {err.strerror}"
            ) from None

    def scalars(self, values: dict[str, float], step: int) -> None:
        """``{tag: value}`` at ``step`` (one point per tag on TensorBoard's Scalars tab)."""
        summaries = [scalar(tag, value) for tag, value in values.items()]
        self._record(*(Event(wall_time=time.time(), step=step, summary=s) for s in summaries))

    def hyperparameters(self, settings: dict, metrics: dict[str, float], step: int) -> None:
        """The run's settings and its ``metrics`` (at ``step``) for TensorBoard's HPARAMS tab,
        as their own run in ``hparams/`` (as tensorboardX's ``add_hparams`` lays them out)."""
        if self._file is None:
            return
        try:
            run = EventLog(self.folder / "hparams")
        except WriteError as err:
            self._stop(err)
            return
        run._record(*(Event(wall_time=time.time(), summary=s) for s in hparams(settings, metrics)))
        run.scalars(metrics, step)  # a failure warns once, naming hparams/
        run.close()

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass  # what could be written was flushed with each record
            self._file = None

    def _record(self, *events: Event) -> None:
        if self._file is None:
            return
        try:
            self._write(*events)
        except OSError as err:
            self._stop(err)

    def _write(self, *events: Event) -> None:
        for event in events:
            self._file.write(event.SerializeToString())
        self._file.flush()

    def _stop(self, err: Exception) -> None:
        """No more records: one warning naming the folder and why."""
        self.close()
        warnings.warn(
            f"TensorBoard logs in {self.folder} are incomplete ({err}); the run goes on",
            RuntimeWarning,
            stacklevel=3,
        )
