"""The notebooks' set-up cell, as Colab runs it: a Python without ``ncf_lib`` installs it.

Every notebook opens with the same set-up cell; its default install URL is the repository
named in ``pyproject.toml``, and ``NCF_INSTALL_URL`` overrides it (forks, and this test).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
#: A checkout's local folders that a copy leaves out: at the top level (``ncf_lib/runs/`` is
#: code, ``runs/`` TensorBoard logs), and caches anywhere.
NOT_COPIED = {".git", ".venv", "data", "results", "runs", "build", "checkpoints", "mutants"}


def _not_copied(folder: str, names: list[str]) -> set[str]:
    caches = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    return caches | (NOT_COPIED & set(names) if Path(folder) == REPO else set())


def _output(python: Path, code: str, cwd: Path) -> str:
    """What ``python -c code`` prints, run in ``cwd``."""
    run = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, cwd=cwd)
    return run.stdout.strip()


def _setup_cell(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def test_every_notebook_has_the_same_setup_cell_installing_the_project_repository():
    cells = {nb.name: _setup_cell(nb) for nb in NOTEBOOKS}
    assert len(set(cells.values())) == 1, "the set-up cells differ"
    pyproject = (REPO / "pyproject.toml").read_text()
    repository = re.search(r'^Repository = "(.+)"$', pyproject, re.M).group(1)
    cell = next(iter(cells.values()))
    assert f'"NCF_INSTALL_URL", "git+{repository}"' in cell
    assert 'find_spec("ncf_lib") is None' in cell
    owner_name = repository.removeprefix("https://github.com/")
    for nb in NOTEBOOKS:  # links into the repository (Colab badges, raw files) name the same one
        for link in re.findall(
            r"(?:colab.research.google.com/github|githubusercontent.com)/"
            r"([\w.-]+/[\w.-]+)",
            nb.read_text(),
        ):
            assert link == owner_name, (nb.name, link)


@pytest.mark.slow
def test_setup_cell_installs_ncf_lib_into_a_fresh_environment_and_the_notebook_runs(tmp_path):
    """A fresh venv sees this environment's third-party packages (a path line in a ``.pth``
    file, which does not run this environment's editable ``ncf_lib`` hook), but not
    ``ncf_lib``; the set-up cell must install it from a copy of the checkout."""
    clone = tmp_path / "clone"
    shutil.copytree(REPO, clone, ignore=_not_copied)
    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    fresh_site = _output(
        python, "import sysconfig; print(sysconfig.get_paths()['purelib'])", tmp_path
    )
    Path(fresh_site, "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = _output(
        python, "import importlib.util; print(importlib.util.find_spec('ncf_lib'))", tmp_path
    )
    assert probe == "None"  # the fresh environment starts without ncf_lib

    kernels = tmp_path / "jupyter" / "kernels" / "fresh"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "fresh",
                "language": "python",
            }
        )
    )
    env = {
        **os.environ,
        "JUPYTER_PATH": str(tmp_path / "jupyter"),
        "NCF_INSTALL_URL": str(clone),
        "NCF_SAMPLE": "1",
    }
    notebook = clone / "notebooks" / "03_metrics.ipynb"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--nbval-lax",
            "--nbval-kernel-name",
            "fresh",
            str(notebook),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=clone,
    )
    assert result.returncode == 0, result.stdout[:6000] + result.stderr[-3000:]
    installed = _output(python, "import ncf_lib; print(ncf_lib.__file__)", tmp_path)
    assert installed.startswith(str(env_dir))  # installed by the cell, not found elsewhere
