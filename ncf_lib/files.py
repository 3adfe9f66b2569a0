"""Writing files safely: atomically (a temporary file beside the target, renamed), with the
user's permissions (not a temporary file's ``0o600``), and one writer at a time."""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ncf_lib.errors import ConfigError, WriteError

#: Write failures a user can fix (space, quota, permissions, a read-only disk).
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``, renamed to it on success (removed on an
    exception); :class:`WriteError` naming it on a full disk or without permission."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise _write_error(path, err) from None
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as err:
        raise _write_error(path, err) from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _write_error(path: Path, err: OSError) -> OSError:
    """A one-line :class:`WriteError` for what a user can fix; the error itself otherwise."""
    if isinstance(err, WriteError) or err.errno not in WRITE_ERRNOS:
        return err
    return WriteError(f"{path}: cannot write it: {err.strerror}")


def check_writable(folder: str | Path, what: str) -> Path:
    """Create ``folder`` and check a byte can be written there (permissions, a read-only or
    full disk), before long work (:class:`ConfigError` naming ``what``, e.g. ``--out``)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as probe:  # a byte: a full disk refuses it
            probe.write(b"\0")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        raise ConfigError(
            f"{what} {folder}: cannot write there ({err.strerror or type(err).__name__})"
        ) from None
    return folder


@contextmanager
def exclusive_lock(path: str | Path, *, wait: bool = True) -> Iterator[None]:
    """Hold an advisory lock on ``path`` for the block; it ends with the process (never
    stale). ``wait=False``: :class:`BlockingIOError` when another process holds it."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
