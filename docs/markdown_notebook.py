"""How the book reads a Markdown file: a jupytext notebook as its cells, any other page whole."""

from __future__ import annotations

import jupytext
import nbformat


def read(text: str) -> nbformat.NotebookNode:
    """A notebook from a ``.md`` file.

    Files with jupytext's header (``notebooks/*.md``) become their cells; any other page
    becomes one Markdown cell, so its code blocks (shell commands) are shown, not executed.
    """
    if text.startswith("---\njupyter:\n"):
        return jupytext.reads(text, fmt="md")
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])
