"""The conda environment and pyproject.toml describe the same packages."""

from __future__ import annotations

import re

import tomllib
from conftest import REPO

CONDA_TO_PIP = {"pytorch": "torch", "tensorboardx": "tensorboardx"}


def _pip_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    return {
        re.split(r"[<>=!~ ]", r, maxsplit=1)[0].lower(): r[
            len(re.split(r"[<>=!~ ]", r, maxsplit=1)[0]) :
        ]
        for r in reqs
    }


def _conda_requirements() -> dict[str, str]:
    out = {}
    text = (REPO / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        match = re.match(r"^  - ([A-Za-z0-9_.-]+)(.*)$", line)
        if match and match.group(1) not in ("python", "pip"):
            name = match.group(1).lower()
            out[CONDA_TO_PIP.get(name, name)] = match.group(2).strip()
    return out


def test_environment_yml_matches_pyproject():
    assert _conda_requirements() == _pip_requirements()


def test_environment_installs_the_package_itself():
    assert "- -e ." in (REPO / "environment.yml").read_text()


def test_the_core_never_imports_the_extras():
    """Every top-level module but the command line loads without ncf_lib.study / ncf_lib.use."""
    import subprocess
    import sys

    core = sorted(
        p.stem for p in (REPO / "ncf_lib").glob("*.py") if p.stem not in ("cli", "__main__")
    )
    code = (
        "import importlib, sys\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module('ncf_lib.' + name)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('ncf_lib.study', 'ncf_lib.use'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert len(core) > 10  # the glob found the package
