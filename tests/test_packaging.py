"""The conda environment and pyproject.toml describe the same packages."""

from __future__ import annotations

import re

import tomllib
from conftest import REPO

CONDA_TO_PIP = {
    "pytorch": "torch",
    "tensorboardx": "tensorboardx",
    "uvicorn-standard": "uvicorn[standard]",
}


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
    """Every top-level module loads without ncf_lib.scale, ncf_lib.study, ncf_lib.use,
    ncf_lib.runs or the command line (ncf_lib.cli)."""
    import subprocess
    import sys

    core = sorted(p.stem for p in (REPO / "ncf_lib").glob("*.py") if p.stem != "__main__")
    code = (
        "import importlib, sys\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module('ncf_lib.' + name)\n"
        "extras = ('ncf_lib.scale', 'ncf_lib.study', 'ncf_lib.use', 'ncf_lib.runs',\n"
        "          'ncf_lib.cli')\n"
        "print(sorted(m for m in sys.modules if m.startswith(extras)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert len(core) > 10  # the glob found the package


def _import_graph() -> dict[str, set[str]]:
    """``{module: ncf_lib modules it imports}``, anywhere in its code (functions too)."""
    import ast

    graph = {}
    for path in (REPO / "ncf_lib").rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ncf_lib"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("ncf_lib"))
        graph[name] = found
    return {name: {m for m in found if m in graph and m != name} for name, found in graph.items()}


def test_the_package_has_no_import_cycles():
    graph = _import_graph()
    assert {"ncf_lib.train", "ncf_lib.scale.distributed", "ncf_lib.study.runner"} <= set(graph)
    done, stack = set(), []

    def visit(name: str) -> None:
        assert name not in stack, " -> ".join([*stack[stack.index(name) :], name])
        if name in done:
            return
        stack.append(name)
        for other in sorted(graph[name]):
            if other != "ncf_lib" and not name.startswith(other + "."):  # a package's own parent
                visit(other)
        stack.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_no_core_module_names_an_extra_even_lazily():
    extras = ("ncf_lib.scale", "ncf_lib.study", "ncf_lib.use", "ncf_lib.runs", "ncf_lib.cli")
    for name, imported in _import_graph().items():
        if name.count(".") == 1 and name not in (*extras, "ncf_lib.__main__"):
            assert not {m for m in imported if m.startswith(extras)}, name


def test_every_sub_package_is_installed():
    """A non-editable install (``pip install .``, or from GitHub in Colab) holds only the
    packages pyproject.toml lists: each folder of ncf_lib with an ``__init__.py``."""
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    folders = sorted(
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "ncf_lib").rglob("__init__.py")
    )
    assert sorted(listed) == folders
