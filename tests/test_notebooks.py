"""The notebooks: every .md/.ipynb pair in sync, outputs kept out of git, common structure.

Executing them is nbval's job (``make test`` runs ``pytest --nbval-lax notebooks``); the
notebooks that show movies are also run here on ratings without a movies file.
"""

from __future__ import annotations

import re

import jupytext
import pytest
from conftest import REPO

NOTEBOOKS = REPO / "notebooks"
PAIRS = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.md"))


def test_there_are_paired_notebooks():
    assert len(PAIRS) >= 7
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == PAIRS


def _cells(notebook):
    return [(c.cell_type, c.source.strip()) for c in notebook.cells]


@pytest.mark.parametrize("name", PAIRS)
def test_pair_in_sync_and_without_outputs(name):
    md = jupytext.read(NOTEBOOKS / f"{name}.md")
    nb = jupytext.read(NOTEBOOKS / f"{name}.ipynb")
    assert _cells(md) == _cells(nb), f"{name}: run `make notebooks` (jupytext --sync)"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{name}: outputs are kept out of git; clear them before committing"
            )


@pytest.mark.parametrize("name", PAIRS)
def test_structure(name):
    nb = jupytext.read(NOTEBOOKS / f"{name}.md")
    first, last = nb.cells[0].source, nb.cells[-1].source
    assert first.startswith(f"# {int(name[:2])}. "), "title first"
    assert "colab-badge.svg" in first and "What you will learn" in first
    setup = nb.cells[1]
    assert setup.cell_type == "code" and 'find_spec("ncf_lib")' in setup.source
    assert "\n## Summary\n" in f"\n{last}", "a summary at the end"
    for cell in nb.cells:
        if cell.cell_type == "code":  # a class or a function of the package may fill a cell
            limit = 40 if cell.source.startswith("# ncf_lib/") else 15
            assert len(cell.source.splitlines()) <= limit, f"{name}: keep code cells short"


@pytest.mark.parametrize("name", PAIRS)
def test_settings_cell_opens_the_notebook(name):
    """The first code cell after the set-up is the reader's settings, tagged ``parameters``
    (papermill's convention), on MovieLens-100K, with the time it takes; the settings reach
    ``settings()``, and nothing else sets them."""
    code = [c for c in jupytext.read(NOTEBOOKS / f"{name}.ipynb").cells if c.cell_type == "code"]
    params = code[1]
    after = next(c for c in code[2:] if "settings(" in c.source)
    assert params.metadata.get("tags") == ["parameters"], f"{name}: tag the settings cell"
    assert 'DATASET = "ml-100k"' in params.source
    assert re.search(r"(About|Under) \d+ minutes? on a 2-core CPU", params.source), "say how long"
    given = "DATASET, EPOCHS" if "EPOCHS = " in params.source else "DATASET"
    assert f"settings({given})" in after.source, f"{name}: pass the settings on"
    later = "\n".join(c.source for c in code[2:])
    assert not re.search(r"^(DATASET|EPOCHS) =", later, re.M), "set only in the settings cell"
    if name[:2] in ("04", "05", "06", "07", "09", "10"):  # the notebooks that train
        assert "EPOCHS = 10" in params.source


@pytest.fixture(scope="module")
def ratings_only(tmp_path_factory):
    """The notebooks' sample as a folder holding one ratings file and nothing else: by
    format, MovieLens-100K's ``u.data`` and MovieLens-1M's ``ratings.dat``."""
    from ncf_lib.ratings import load_ratings
    from ncf_lib.tutorial import SAMPLE_DATASET

    rows = load_ratings(SAMPLE_DATASET).ratings.itertuples(index=False)
    lines = [(r.user_id, r.item_id, int(r.rating), r.timestamp) for r in rows]
    folders = {}
    for name, sep in (("u.data", "\t"), ("ratings.dat", "::")):
        folder = tmp_path_factory.mktemp(name.replace(".", "-"))
        (folder / name).write_text("".join(sep.join(map(str, row)) + "\n" for row in lines))
        folders[name] = folder
    return folders


@pytest.mark.slow
@pytest.mark.parametrize("name", PAIRS)
def test_every_notebook_runs_on_a_ratings_file_alone(name, ratings_only, monkeypatch):
    """A folder with a ratings file and nothing else (no titles, no genres): every notebook
    runs to the end; those that show movies name them by id and say so."""
    from nbclient import NotebookClient

    monkeypatch.setenv("NCF_SAMPLE", "1")
    kind = ("u.data", "ratings.dat")[PAIRS.index(name) % 2]  # each format in half of them
    monkeypatch.setenv("NCF_DATASET", str(ratings_only[kind]))
    notebook = jupytext.read(NOTEBOOKS / f"{name}.ipynb")
    here = {"metadata": {"path": str(NOTEBOOKS)}}  # in its folder, as JupyterLab runs it
    NotebookClient(notebook, timeout=300, resources=here).execute()
    printed = "".join(
        out.get("text", "") for cell in notebook.cells for out in cell.get("outputs", [])
    )
    if name[:2] in ("01", "07", "09"):  # the notebooks that show movies
        assert "has no movies file: movies are named by their ids" in printed
        assert "movie " in str([cell.get("outputs") for cell in notebook.cells])
