"""Errors a user can fix: the command line prints them as one line (exit code 2); anything
else is a bug and keeps its traceback. Each also derives from the built-in exception a
caller would expect (``ValueError``, ``FileNotFoundError``, ``LookupError``)."""

from __future__ import annotations


class UserError(Exception):
    """Something asked for cannot be done; the message names what and what was expected."""


class ConfigError(UserError, ValueError):
    """A setting, flag or argument has a value that cannot be used."""


class DataError(UserError, ValueError):
    """The data cannot be used as asked (too few items to sample from, ...)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class UnknownIdError(UserError, LookupError):
    """A user or item id that the data or the checkpoint does not have."""

    def __str__(self) -> str:  # LookupError's str() would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(UserError, ValueError):
    """A file is not a checkpoint this version can load, or does not fit the data."""


class NonFiniteScoresError(DataError):
    """A model scored NaN or infinity: metrics of such scores would mean nothing."""


class TrainingDivergedError(ConfigError):
    """The training loss became NaN or infinite (a learning rate or L2 weight too large)."""


class WriteError(UserError, OSError):
    """An output cannot be written: the disk is full, the folder is read-only, ..."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that a run ends the same way for both."""
