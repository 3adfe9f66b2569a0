"""The notebooks build the package: each code cell that starts with ``# ncf_lib/<module>.py``
defines functions and classes whose source must equal the package's, character for
character. Edit one without the other and this test fails, naming the notebook and the name.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap

import jupytext
import pytest
from conftest import REPO

NOTEBOOKS = REPO / "notebooks"
MARK = re.compile(r"^# ncf_lib/((?:\w+/)*\w+)\.py\b")
#: What each notebook builds in the open (at least these names).
BUILDS = {
    "02_dataset_construction": {
        "reindex",
        "leave_one_out",
        "_ranges",
        "interacted_cells",
        "sample_candidates",
        "sample_negatives",
        "epoch_arrays",
        "batches",
    },
    "03_metrics": {"rank_of_first", "hit_rate", "ndcg"},
    "04_gmf": {"embedding", "prediction_layer", "Recommender", "GMF", "train_epoch"},
    "05_mlp": {"mlp_tower", "MLP"},
    "06_neumf": {"NeuMF", "pretrained_neumf"},
    "08_beyond_the_paper": {
        "_history",
        "ItemMatrixScorer",
        "ease",
        "_log_choose",
        "sampled_rank_distribution",
        "correction",
        "bpr_loss",
        "bpr_train_epoch",
    },
}


def marked_definitions(path):
    """``(module, name, cell source of the definition)`` for every marked cell of a notebook."""
    found = []
    for cell in jupytext.read(path).cells:
        match = MARK.match(cell.source) if cell.cell_type == "code" else None
        if match is None:
            continue
        lines = cell.source.splitlines()
        for node in ast.parse(cell.source).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                found.append(
                    (match.group(1), node.name, "\n".join(lines[start - 1 : node.end_lineno]))
                )
    return found


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_notebook_builds_what_the_package_uses(name):
    found = marked_definitions(NOTEBOOKS / f"{name}.md")
    assert BUILDS[name] <= {defined for _, defined, _ in found}, name
    for module, defined, source in found:
        package = getattr(importlib.import_module("ncf_lib." + module.replace("/", ".")), defined)
        expected = textwrap.dedent(inspect.getsource(package)).strip()
        assert source.strip() == expected, (
            f"{name}: {defined} differs from ncf_lib/{module}.py; copy one into the other"
        )


def test_a_changed_cell_is_caught(tmp_path):
    """The check is not vacuous: one changed character in a marked cell is a difference."""
    text = (NOTEBOOKS / "04_gmf.md").read_text()
    changed = tmp_path / "04_gmf.md"
    changed.write_text(
        text.replace(
            "self.user_embedding(users) * self.item_embedding(items)",
            "self.user_embedding(users) + self.item_embedding(items)",
            1,
        )
    )
    module, _, source = next(d for d in marked_definitions(changed) if d[1] == "GMF")
    assert (
        source.strip()
        != textwrap.dedent(
            inspect.getsource(importlib.import_module(f"ncf_lib.{module}").GMF)
        ).strip()
    )
