"""Writing files safely: atomically, with the user's permissions, and one writer at a time.

:func:`atomic_write` writes to a temporary file beside the target and renames it, so a
reader never sees half a file; the result gets the permissions any new file of the user
gets (``0o666`` less the umask), not the private ``0o600`` of a temporary file.
:func:`exclusive_lock` makes a second process that wants the same file wait or stop.
"""

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
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.

    Raises:
        WriteError: the file cannot be written (a full disk, no permission), naming it.
    """
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
    """Create ``folder`` if needed and check a file can be written there, before long work.

    Raises:
        ConfigError: naming ``what`` (e.g. ``--out``) and the folder.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ConfigError(
            f"{what} {folder}: cannot write there ({err.strerror or type(err).__name__})"
        ) from None
    return folder


@contextmanager
def exclusive_lock(path: str | Path, *, wait: bool = True) -> Iterator[None]:
    """Hold an advisory lock on ``path`` (created if missing) for the ``with`` block.

    The lock ends with the process, so a crashed holder never leaves a stale lock. With
    ``wait=False`` a lock held by another process raises :class:`BlockingIOError`.
    """
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
