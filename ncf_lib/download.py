"""Download and cache the MovieLens archives from GroupLens: streamed into a temporary file,
checked against a pinned MD5, then renamed (a cut transfer never leaves a file that looks
valid); extracted once, through a temporary folder renamed when complete."""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ncf_lib.errors import ConfigError, UserError
from ncf_lib.files import current_umask

#: Environment variable that overrides the default cache folder.
DATA_DIR_ENV = "NCF_DATA_DIR"
#: Seconds a whole download may take (a server that trickles bytes is not waited on for ever).
DEADLINE_ENV = "NCF_DOWNLOAD_DEADLINE"
DEFAULT_DEADLINE = 3600.0

GROUPLENS = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class DatasetSpec:
    """A MovieLens release and GroupLens' MD5 of it (``None``: ``ml-latest-small`` is
    re-issued, so its published ``URL.md5`` is read at download time)."""

    name: str
    url: str
    md5: str | None


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("ml-1m", f"{GROUPLENS}/ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906"),
        DatasetSpec("ml-100k", f"{GROUPLENS}/ml-100k.zip", "0e33842e24a9c977be4e0107933c0723"),
        DatasetSpec("ml-20m", f"{GROUPLENS}/ml-20m.zip", "cd245b17a1ae2cc31bb14903e1204af3"),
        DatasetSpec("ml-25m", f"{GROUPLENS}/ml-25m.zip", "6b51fb2759a8657d3bfcbfc42b592ada"),
        DatasetSpec("ml-latest-small", f"{GROUPLENS}/ml-latest-small.zip", None),
    ]
}


class DownloadError(UserError, RuntimeError):
    """A dataset could not be downloaded or verified; the message says what to do by hand."""


def default_data_dir() -> Path:
    """The cache folder: ``$NCF_DATA_DIR``, else ``data/`` in the clone holding this package
    (a ``pyproject.toml`` above it), else in the working directory."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").exists():
        return repo / "data"
    return Path.cwd() / "data"


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """MD5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _by_hand(url: str, dest: Path) -> str:
    return (
        f"To place it by hand, download {url} in a browser and save it as {dest} "
        f"(or set {DATA_DIR_ENV} to the folder that holds it), or run offline with "
        "--dataset synthetic (make train DATASET=synthetic)."
    )


def download(
    url: str,
    dest: Path,
    md5: str | None,
    *,
    timeout: float = 30.0,
    deadline: float | None = None,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` unless a valid copy is there: streamed into
    ``dest.part`` (locked while written, so a second download waits for nothing and a part
    left by a killed one is started over), renamed once the length and the MD5 (``None``:
    any) are right. ``timeout``: seconds to connect and per read; ``deadline``: seconds for
    the whole download (default :func:`download_deadline`). Any failure removes the partial
    file and raises :class:`DownloadError`."""
    dest = Path(dest)
    deadline = download_deadline() if deadline is None else deadline
    stale = ""
    if dest.exists():
        found = md5sum(dest)
        if md5 is None or found == md5:
            return dest
        stale = (
            f"The file already at {dest} failed its checksum (MD5 {found}, expected {md5}): "
            "it is incomplete or another file; delete or replace it. "
        )
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        out = open(part, "ab")  # noqa: SIM115 - closed below, after the rename
    except OSError as err:
        raise DownloadError(
            f"Cannot write to the data folder {dest.parent} ({err.strerror}); choose another "
            f"with --data-dir or {DATA_DIR_ENV}. " + _by_hand(url, dest)
        ) from None
    with out:
        try:
            fcntl.flock(out, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadError(
                f"{part} is being written by another download of {url}; wait for it to finish"
            ) from None
        try:
            out.truncate(0)  # what a killed download left is started over
            _stream(url, out, dest, md5, timeout, deadline, progress)
            os.chmod(part, 0o666 & ~current_umask())
            os.replace(part, dest)
            return dest
        except DownloadError:
            raise
        except http.client.IncompleteRead as err:
            raise DownloadError(
                f"Download of {url} was cut short after {len(err.partial):,} more bytes. "
                + _by_hand(url, dest)
            ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", err)
            raise DownloadError(
                stale + f"Could not download {url}: {reason}. " + _by_hand(url, dest)
            ) from None
        finally:
            part.unlink(missing_ok=True)


def download_deadline() -> float:
    """Seconds a download may take in all: ``$NCF_DOWNLOAD_DEADLINE``, default an hour."""
    text = os.environ.get(DEADLINE_ENV, "").strip()
    try:
        value = float(text) if text else DEFAULT_DEADLINE
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{DEADLINE_ENV}={text!r}: expected a number of seconds above 0")
    return value


def _stream(url, out, dest, md5, timeout: float, deadline: float, progress: bool) -> None:
    """Copy ``url``'s body into ``out``, checking its length, MD5 and the ``deadline``."""
    end = time.monotonic() + deadline
    digest = hashlib.md5()
    received = 0
    with urllib.request.urlopen(url, timeout=min(timeout, deadline)) as resp:
        expected = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(
            total=expected, unit="B", unit_scale=True, desc=dest.name, disable=not progress
        ) as bar:
            while block := resp.read1(1 << 16):  # what has arrived: a trickle is checked too
                out.write(block)
                digest.update(block)
                received += len(block)
                bar.update(len(block))
                if time.monotonic() > end:
                    raise DownloadError(
                        f"Download of {url} passed its deadline of {deadline:g} s with "
                        f"{received:,} bytes received (set {DEADLINE_ENV} to allow longer). "
                        + _by_hand(url, dest)
                    )
    out.flush()
    if expected is not None and received != expected:
        raise DownloadError(
            f"Download of {url} was cut short: {received:,} of {expected:,} bytes. "
            + _by_hand(url, dest)
        )
    if md5 is not None and digest.hexdigest() != md5:
        raise DownloadError(
            f"Checksum mismatch for {url}: got MD5 {digest.hexdigest()}, expected {md5}. "
            + _by_hand(url, dest)
        )


def published_md5(url: str, timeout: float = 30.0) -> str:
    """Read the checksum GroupLens publishes at ``url + '.md5'`` (``MD5 (name) = hex``)."""
    try:
        with urllib.request.urlopen(url + ".md5", timeout=timeout) as resp:
            text = resp.read(4096).decode("ascii", "replace")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise DownloadError(f"Could not read the checksum {url}.md5: {err}") from None
    token = text.strip().split()[-1].lower() if text.strip() else ""
    if len(token) != 32 or any(c not in "0123456789abcdef" for c in token):
        raise DownloadError(f"{url}.md5 does not hold an MD5 checksum: {text[:80]!r}")
    return token


def fetch(name: str, data_dir: Path | str | None = None, *, progress: bool = True) -> Path:
    """The extracted folder of a release in :data:`DATASETS`: ``data_dir/NAME/`` (default
    :func:`default_data_dir`), else extracted from a valid ``NAME.zip``, else downloaded."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    spec = DATASETS[name]
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    folder = root / name
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    md5 = spec.md5 if spec.md5 is not None else published_md5(spec.url)
    archive = download(spec.url, root / f"{name}.zip", md5, progress=progress)
    extract(archive, folder)
    return folder


def extract(archive: Path, folder: Path) -> Path:
    """Extract a MovieLens zip (one top-level folder inside) to ``folder``, atomically."""
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", suffix=".part", dir=folder.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        entries = list(tmp.iterdir())
        inner = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        os.chmod(inner, 0o777 & ~current_umask())  # mkdtemp's folder is private (0o700)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(inner, folder)
    except zipfile.BadZipFile:
        raise DownloadError(f"{archive} is not a valid zip archive; delete it and retry") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
