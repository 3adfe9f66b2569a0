"""`make lab` as a reader uses it: JupyterLab starts on the notebooks, lists them, and runs a
cell in a kernel that imports the package.

The server is started through the Makefile's own target (headless, on a free local port, with
a token), driven through Jupyter Server's REST API and a kernel's websocket, then stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid

import pytest
from conftest import REPO

#: Whole system checks (a browser, a server): `make test-all` runs them.
pytestmark = pytest.mark.slow

NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("[0-9]*.ipynb"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab():
    """JupyterLab started by `make lab`; yields (base URL, token)."""
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    port, token = _free_port(), secrets.token_hex(16)
    args = (
        f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token} "
        "--ServerApp.port_retries=0"
    )
    # -o: the virtual environment counts as installed (it is: the tests run in it)
    proc = subprocess.Popen(
        ["make", "-s", "-o", ".venv/.installed", "lab", f"ARGS={args}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _get(base, token, "/api/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    if proc.poll() is None:
                        os.killpg(proc.pid, signal.SIGKILL)
                    pytest.fail(f"JupyterLab did not start:\n{proc.stdout.read()}")
                time.sleep(0.5)
        yield base, token
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _request(base: str, token: str, path: str, method: str = "GET", body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as response:
        text = response.read().decode()
    return json.loads(text) if text else None


def _get(base: str, token: str, path: str):
    return _request(base, token, path)


def _execute(base: str, token: str, kernel: str, code: str) -> str:
    """Run ``code`` in a kernel over its websocket; return what it printed."""
    from tornado.websocket import websocket_connect

    async def run() -> str:
        url = f"{base.replace('http', 'ws')}/api/kernels/{kernel}/channels?token={token}"
        ws = await websocket_connect(url)
        msg_id = uuid.uuid4().hex
        await ws.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "test",
                        "session": uuid.uuid4().hex,
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                    },
                }
            )
        )
        printed = []
        while True:
            raw = await asyncio.wait_for(ws.read_message(), timeout=120)
            assert raw is not None, "the kernel's websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                printed.append(content["text"])
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                ws.close()
                return "".join(printed)

    return asyncio.run(run())


def test_lab_lists_the_notebooks(lab):
    base, token = lab
    listing = _get(base, token, "/api/contents?content=1")
    names = sorted(e["name"] for e in listing["content"] if e["name"].endswith(".ipynb"))
    assert names == NOTEBOOKS and len(names) == 10
    notebook = _get(base, token, f"/api/contents/{NOTEBOOKS[0]}")
    assert notebook["type"] == "notebook" and notebook["content"]["cells"]


def test_lab_runs_a_cell_with_the_package(lab):
    base, token = lab
    # what opening a notebook in JupyterLab does: a session, with a kernel, for that file
    session = _request(
        base,
        token,
        "/api/sessions",
        "POST",
        {
            "path": NOTEBOOKS[0],
            "type": "notebook",
            "kernel": {"name": "python3"},
        },
    )
    try:
        out = _execute(
            base,
            token,
            session["kernel"]["id"],
            "import ncf_lib.models as m, os\nprint(m.__name__, 6 * 7, os.getcwd())",
        )
    finally:
        _request(base, token, f"/api/sessions/{session['id']}", "DELETE")
    name, answer, cwd = out.split()
    assert (name, answer) == ("ncf_lib.models", "42")
    assert os.path.samefile(cwd, REPO / "notebooks")  # kernels start beside the notebooks
