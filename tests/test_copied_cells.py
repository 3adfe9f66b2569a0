"""A reader copies a notebook's ``# ncf_lib/...`` cells into a ``.py`` file of their own: each
must work there with only the imports of that cell and of the cell right above it (and the
cells it built before it, with theirs), in a fresh interpreter. Every name its functions and
classes use, in their code and in their annotations, must then be defined.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import jupytext
import pytest
from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9]*.md"))

# Run after the copied code: every global name a copied function or method reads (in its body,
# from the bytecode) and every name its annotations use must resolve.
CHECK = """
import builtins as _builtins, dis as _dis, inspect as _inspect, types as _types, typing as _typing

def _globals_read(code):
    for ins in _dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            yield ins.argval
    for const in code.co_consts:
        if isinstance(const, _types.CodeType):
            yield from _globals_read(const)

_missing = []
for _name in _DEFINED:
    _obj = globals()[_name]
    _parts = [_obj]
    if _inspect.isclass(_obj):
        _parts = [v.__func__ if isinstance(v, (classmethod, staticmethod)) else v
                  for v in vars(_obj).values()]
        _typing.get_type_hints(_obj)
    for _part in _parts:
        if _inspect.isfunction(_part) and _part.__code__.co_filename == __file__:
            _typing.get_type_hints(_part)
            _missing += [f"{_name}: {n}" for n in _globals_read(_part.__code__)
                         if n not in globals() and not hasattr(_builtins, n)]
assert not _missing, f"names used but not defined: {sorted(set(_missing))}"
"""


def copied_cells(path):
    """``(index, script, defined names)`` for every marked cell: the imports of that cell and
    of the code cell right above it (``__future__`` first, as Python requires), then the
    marked cells before it with their own such imports (what a reader has copied already),
    then the cell itself."""
    future, shown, built, above = [], [], [], ""
    for index, cell in enumerate(jupytext.read(path).cells):
        if cell.cell_type != "code" or cell.source.startswith("%"):
            continue
        if cell.source.startswith("# ncf_lib/"):
            tree = ast.parse(cell.source)
            defined = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
            for source in (above, cell.source):
                for node in ast.parse(source).body:
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        is_future = getattr(node, "module", "") == "__future__"
                        (future if is_future else shown).append(ast.unparse(node))
            body = "\n".join(
                line for line in cell.source.splitlines() if not line.startswith("from __future__")
            )
            yield index, "\n\n".join([*dict.fromkeys(future), *shown, *built, body]), defined
            built.append(body)
        above = cell.source


CASES = [
    pytest.param(script, defined, id=f"{path.stem}-cell{index}")
    for path in NOTEBOOKS
    for index, script, defined in copied_cells(path)
]


def test_every_building_notebook_is_covered():
    names = {case.id.split("-cell")[0] for case in CASES}
    assert {"02_dataset_construction", "03_metrics", "04_gmf", "05_mlp", "06_neumf"} <= names


@pytest.mark.parametrize("script, defined", CASES)
def test_a_copied_cell_runs_on_its_own(tmp_path, script, defined):
    """Annotations are resolved too (``typing.get_type_hints``): one naming something the
    notebook never imported works in the notebook under ``from __future__ import
    annotations`` but fails for a reader who calls ``get_type_hints`` or drops that line."""
    copied = tmp_path / "copied.py"
    copied.write_text(f"{script}\n\n_DEFINED = {defined!r}\n{CHECK}")
    run = subprocess.run(
        [sys.executable, str(copied)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]


def test_the_check_catches_a_missing_import(tmp_path):
    """Without the notebook's ``from collections.abc import Iterable``, ``train_epoch``'s
    annotation names something undefined, and the copied file fails."""
    script, defined = next(
        (s, d) for p in NOTEBOOKS if p.stem == "04_gmf" for _, s, d in copied_cells(p)
        if "train_epoch" in d
    )  # fmt: skip
    broken = script.replace("from collections.abc import Iterable", "")
    copied = tmp_path / "copied.py"
    copied.write_text(f"{broken}\n\n_DEFINED = {defined!r}\n{CHECK}")
    run = subprocess.run([sys.executable, str(copied)], capture_output=True, text=True)
    assert run.returncode != 0 and "Iterable" in run.stderr
