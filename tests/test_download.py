"""ncf_lib.download against a local HTTP server: checksums, cache, extraction, errors that leave
nothing behind."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import subprocess
import sys
import threading
import time
import zipfile

import pytest
from conftest import one_line_error

from ncf_lib import download as dl
from ncf_lib.cli import main
from ncf_lib.ratings import load_ratings


class Server:
    """Serves ``files`` (path -> bytes); ``truncate`` paths promise more bytes than they send;
    ``trickle`` paths send a byte every 20 ms (``sized``: with their length announced)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.trickle: dict[str, bool] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                if outer.trickle.get(self.path, True):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in outer.trickle:
                    try:
                        for i in range(len(body)):
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(0.02)
                    except OSError:  # the client gave up
                        return
                    return
                self.wfile.write(body[: len(body) // 2] if self.path in outer.truncate else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def _zip_of_ml100k() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(
            "ml-100k/u.data", "1\t10\t5\t881250949\n1\t20\t3\t881250950\n2\t10\t4\t881250951\n"
        )
        zf.writestr("ml-100k/u.item", "10|Ten (1995)|x||u|" + "|".join("0" * 19) + "\n")
    return buf.getvalue()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_download_success_and_cache_reuse(server, tmp_path):
    body = b"x" * 200_000
    server.files["/f.bin"] = body
    md5 = hashlib.md5(body).hexdigest()
    dest = dl.download(server.url + "/f.bin", tmp_path / "f.bin", md5, progress=False)
    assert dest.read_bytes() == body
    dl.download(server.url + "/f.bin", dest, md5, progress=False)
    assert server.requests == ["/f.bin"]  # second call: no request
    assert _leftovers(tmp_path) == ["f.bin"]


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.files["/f.bin"] = b"payload"
    with pytest.raises(dl.DownloadError, match="Checksum mismatch") as err:
        dl.download(server.url + "/f.bin", tmp_path / "f.bin", "0" * 32, progress=False)
    assert "by hand" in str(err.value) and str(tmp_path / "f.bin") in str(err.value)
    assert _leftovers(tmp_path) == []


def test_truncated_transfer_leaves_nothing(server, tmp_path):
    server.files["/f.bin"] = b"y" * 100_000
    server.truncate.add("/f.bin")
    with pytest.raises(dl.DownloadError, match="cut short"):
        dl.download(server.url + "/f.bin", tmp_path / "f.bin", None, progress=False)
    assert _leftovers(tmp_path) == []


def test_server_down_is_a_clear_error(tmp_path):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(dl.DownloadError, match="Could not download .*by hand"):
        dl.download(f"http://127.0.0.1:{port}/f.bin", tmp_path / "f.bin", None, progress=False)
    assert _leftovers(tmp_path) == []


def test_not_found_is_a_clear_error(server, tmp_path):
    with pytest.raises(dl.DownloadError, match="Not Found"):
        dl.download(server.url + "/nope.zip", tmp_path / "nope.zip", None, progress=False)
    assert _leftovers(tmp_path) == []


def test_fetch_extracts_once_and_load_ratings_uses_it(server, tmp_path, monkeypatch):
    archive = _zip_of_ml100k()
    server.files["/ml-100k.zip"] = archive
    spec = dl.DatasetSpec("ml-100k", server.url + "/ml-100k.zip", hashlib.md5(archive).hexdigest())
    monkeypatch.setitem(dl.DATASETS, "ml-100k", spec)
    folder = dl.fetch("ml-100k", tmp_path, progress=False)
    assert folder == tmp_path / "ml-100k" and (folder / "u.data").is_file()
    assert _leftovers(tmp_path) == ["ml-100k", "ml-100k.zip"]
    monkeypatch.setenv(dl.DATA_DIR_ENV, str(tmp_path))
    loaded = load_ratings("ml-100k", progress=False)
    assert len(loaded.ratings) == 3 and loaded.movies["title"].tolist() == ["Ten (1995)"]
    assert server.requests == ["/ml-100k.zip"]


def test_the_command_line_parses_a_download_once(server, tmp_path, monkeypatch, capsys):
    """``info`` on a named dataset downloads it, keeps its parsed columns beside the file
    and reads them the next time; ``load_ratings`` on its own leaves no cache."""
    from ncf_lib import ratings as ratings_module

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # 5 users x 4 of 8 items
        rows = [f"{u}\t{1 + (u + i) % 8}\t3\t{880000000 + 10 * u + i}\n" for u in range(1, 6)
                for i in range(4)]  # fmt: skip
        zf.writestr("ml-100k/u.data", "".join(rows))
    archive = buf.getvalue()
    server.files["/ml-100k.zip"] = archive
    spec = dl.DatasetSpec("ml-100k", server.url + "/ml-100k.zip", hashlib.md5(archive).hexdigest())
    monkeypatch.setitem(dl.DATASETS, "ml-100k", spec)
    load_ratings("ml-100k", tmp_path, progress=False)
    assert not (tmp_path / "ml-100k" / ".u.data.parsed.npz").exists()
    argv = ["info", "--dataset", "ml-100k", "--data-dir", str(tmp_path), "--num-ng-test", "1"]
    assert main(argv) == 0
    assert (tmp_path / "ml-100k" / ".u.data.parsed.npz").is_file()
    first = capsys.readouterr().out

    def parse(path):
        raise AssertionError(f"{path} parsed again")

    monkeypatch.setattr(ratings_module, "read_ratings", parse)
    assert main(argv) == 0
    same = lambda out: [line for line in out.splitlines() if not line.startswith("seconds")]  # noqa: E731
    assert same(capsys.readouterr().out) == same(first)
    assert server.requests == ["/ml-100k.zip"]


def test_fetch_unpinned_reads_published_md5(server, tmp_path, monkeypatch):
    archive = _zip_of_ml100k()
    server.files["/ml-latest-small.zip"] = archive
    server.files["/ml-latest-small.zip.md5"] = (
        f"MD5 (ml-latest-small.zip) = {hashlib.md5(archive).hexdigest()}\n".encode()
    )
    spec = dl.DatasetSpec("ml-latest-small", server.url + "/ml-latest-small.zip", None)
    monkeypatch.setitem(dl.DATASETS, "ml-latest-small", spec)
    assert (dl.fetch("ml-latest-small", tmp_path, progress=False) / "u.data").is_file()


def test_fetch_rejects_bad_zip(server, tmp_path, monkeypatch):
    server.files["/ml-100k.zip"] = b"not a zip"
    spec = dl.DatasetSpec(
        "ml-100k", server.url + "/ml-100k.zip", hashlib.md5(b"not a zip").hexdigest()
    )
    monkeypatch.setitem(dl.DATASETS, "ml-100k", spec)
    with pytest.raises(dl.DownloadError, match="not a valid zip"):
        dl.fetch("ml-100k", tmp_path, progress=False)
    assert "ml-100k" not in _leftovers(tmp_path)


def test_default_data_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(dl.DATA_DIR_ENV, str(tmp_path))
    assert dl.default_data_dir() == tmp_path
    monkeypatch.delenv(dl.DATA_DIR_ENV)
    assert dl.default_data_dir().name == "data"


def test_pinned_checksums_cover_every_named_dataset():
    assert set(dl.DATASETS) == {"ml-1m", "ml-100k", "ml-20m", "ml-25m", "ml-latest-small"}
    for spec in dl.DATASETS.values():
        assert spec.url.startswith("https://files.grouplens.org/datasets/movielens/")
        assert spec.md5 is None or len(spec.md5) == 32


def test_unwritable_data_dir_keeps_the_place_by_hand_hint(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    one_line_error(
        ["info", "--dataset", "ml-100k", "--data-dir", str(blocker / "data")],
        capsys,
        "Cannot write to the data folder",
        "To place it by hand",
    )


def test_a_corrupt_zip_in_the_data_folder_is_named(tmp_path, capsys, monkeypatch):
    from ncf_lib import download

    monkeypatch.setitem(
        download.DATASETS,
        "ml-100k",
        download.DATASETS["ml-100k"].__class__(
            **{**vars(download.DATASETS["ml-100k"]), "url": "http://127.0.0.1:9/ml-100k.zip"}
        ),
    )
    with zipfile.ZipFile(tmp_path / "ml-100k.zip", "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t2\t3\t4\n")  # not the published file
    one_line_error(
        ["info", "--dataset", "ml-100k", "--data-dir", str(tmp_path)],
        capsys,
        f"The file already at {tmp_path / 'ml-100k.zip'} failed its checksum",
    )


@pytest.mark.parametrize("sized", [True, False])
def test_a_trickling_server_meets_the_deadline_and_leaves_nothing(server, tmp_path, sized):
    """Bytes arrive (so no read times out) but too slowly: the deadline stops it, says so
    and how to allow longer; no partial file is left."""
    server.files["/slow.bin"] = b"y" * 10_000
    server.trickle["/slow.bin"] = sized
    started = time.monotonic()
    with pytest.raises(dl.DownloadError) as stopped:
        dl.download(server.url + "/slow.bin", tmp_path / "slow.bin", None, deadline=0.3,
                    progress=False)  # fmt: skip
    assert time.monotonic() - started < 5
    assert "passed its deadline of 0.3 s" in str(stopped.value)
    assert dl.DEADLINE_ENV in str(stopped.value)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("value", ["0", "soon"])
def test_a_bad_deadline_setting_is_named(monkeypatch, value):
    monkeypatch.setenv(dl.DEADLINE_ENV, value)
    with pytest.raises(dl.ConfigError, match=f"^{dl.DEADLINE_ENV}={value!r}: expected a number"):
        dl.download_deadline()


def test_a_part_left_by_a_killed_download_is_started_over(server, tmp_path):
    """SIGKILL leaves ``dest.part`` (no code runs): the next download takes it over, unlocked,
    and ends with the right file and no part."""
    body = b"z" * 50_000
    server.files["/k.bin"] = body
    server.trickle["/k.bin"] = True
    script = (
        "import sys; from ncf_lib import download as dl; "
        "dl.download(sys.argv[1], sys.argv[2], None, progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, server.url + "/k.bin",
                             str(tmp_path / "k.bin")])  # fmt: skip
    part = tmp_path / "k.bin.part"
    for _ in range(200):
        if part.is_file():
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert part.is_file() and not (tmp_path / "k.bin").exists()
    with open(part, "ab") as left:  # what it had received (its buffer was lost with it)
        left.write(b"bytes of the killed download")
    del server.trickle["/k.bin"]
    md5 = hashlib.md5(body).hexdigest()
    assert dl.download(server.url + "/k.bin", tmp_path / "k.bin", md5, progress=False)
    assert (tmp_path / "k.bin").read_bytes() == body and _leftovers(tmp_path) == ["k.bin"]


def test_a_download_in_progress_is_not_touched_by_a_second(server, tmp_path):
    import fcntl

    server.files["/c.bin"] = b"c" * 100
    part = tmp_path / "c.bin.part"
    with open(part, "ab") as held:  # as a running download holds it
        held.write(b"partial")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(dl.DownloadError, match="c.bin.part is being written by another"):
            dl.download(server.url + "/c.bin", tmp_path / "c.bin", None, progress=False)
        assert part.read_bytes() == b"partial"
    assert dl.download(server.url + "/c.bin", tmp_path / "c.bin", None, progress=False)
    assert _leftovers(tmp_path) == ["c.bin"]
