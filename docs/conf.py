"""Sphinx configuration of the rendered tutorial (`make book`).

The notebooks are the jupytext Markdown files in ``notebooks/`` (``docs/notebooks`` links to
that folder); myst-nb executes each of them while the book is built, so every figure, table
and number on a page was computed by that build. Which data they ran on follows the notebooks'
own settings (:func:`ncf_lib.tutorial.settings`: ``NCF_DATASET``, ``NCF_SAMPLE``), and a banner
on every page says so.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import jupyter_server_mathjax
from sphinx import addnodes

from ncf_lib.study.report import dataset_label
from ncf_lib.tutorial import settings

project = "ncf-tutorial"
author = "ncf-tutorial contributors"
copyright = "ncf-tutorial contributors"  # noqa: A001 (Sphinx's name)

extensions = ["myst_nb"]
# The notebooks' jupytext Markdown becomes cells (executed); other pages stay text.
sys.path.insert(0, str(Path(__file__).parent))
nb_custom_formats = {".md": "markdown_notebook.read"}
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
# MathJax is served with the book (from the jupyter-server-mathjax package), so formulas
# render without a network connection too.
_MATHJAX = Path(jupyter_server_mathjax.__file__).parent / "static"
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
_STIX = "STIX-Web"  # the one web font the package ships
mathjax2_config = {
    # myst-nb marks sections "ignore" and the math in them "math": typeset only that
    "tex2jax": {"processClass": "math|output_area", "ignoreClass": "tex2jax_ignore|mathjax_ignore"},
    "HTML-CSS": {
        "availableFonts": [_STIX],
        "preferredFont": _STIX,
        "webFont": _STIX,
        "imageFont": None,
    },
}

root_doc = "index"
exclude_patterns = [
    "_build",
    "notebooks/*.ipynb",
    "notebooks/outputs",
    "notebooks/.ipynb_checkpoints",
    "results-ml-100k/*.md",  # summary and tables: shown in results.md, not pages of their own
]

# Executed at every build, in the notebook's own folder; a failing cell fails the build.
nb_execution_mode = "force"
nb_execution_timeout = 3600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

_S = settings()
_DATA = (
    f"a small generated sample ({_S.dataset}) with fewer epochs than their defaults"
    if _S.sample
    else dataset_label(_S.dataset)
)

html_theme = "sphinx_book_theme"
html_title = "Neural Collaborative Filtering, built step by step"
html_theme_options = {
    "repository_url": "https://github.com/ncf-tutorial/ncf-tutorial",
    "use_repository_button": True,
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "announcement": f"The notebooks on these pages were executed on {_DATA}.",
}
html_last_updated_fmt = "%Y-%m-%d"


def _copy_mathjax(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        shutil.copytree(_MATHJAX, Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


# `docs/notebooks` links to `notebooks/`, and Sphinx resolves a link's path through that link:
# a notebook's `[term](glossary.md#term)` would name `<repository>/notebooks/glossary`, a file
# outside the book. Such targets are renamed to the page they are in the book.
_NOTEBOOKS = Path(__file__).parent / "notebooks"


def _link_notebook_pages(app, doctree) -> None:
    real = _NOTEBOOKS.resolve()
    for node in doctree.findall(addnodes.pending_xref):
        target = Path(node.get("reftarget", ""))
        if node.get("refdomain") == "doc" and target.is_absolute() and target.is_relative_to(real):
            node["reftarget"] = (Path("notebooks") / target.relative_to(real)).as_posix()


def setup(app):
    app.connect("doctree-read", _link_notebook_pages)
    app.connect("build-finished", _copy_mathjax)
