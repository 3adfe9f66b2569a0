"""The rendered book (`make book`), as a reader sees it: served on a local port, opened in
headless Chromium.

Needs the built book in ``build/book/`` and Chromium with its driver (``apt-get install
chromium chromium-driver``); without them the tests skip with the reason, except under CI
(``CI`` set), where `.ci/run` provides both and a skip would hide a broken book.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, missing_tool

#: Whole system checks (a browser, a server): `make test-all` runs them.
pytestmark = pytest.mark.slow

BOOK = REPO / "build" / "book"
SCREENSHOTS = REPO / "build" / "book-screenshots"
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9]*.md"))
# The notebooks that train a model and plot what it learned.
TRAINING = [n for n in NOTEBOOKS if n[:2] in ("04", "05", "06", "07", "09", "10")]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site():
    """The built book served over HTTP on a free local port; yields its base URL."""
    if not (BOOK / "index.html").is_file():
        missing_tool(f"no built book in {BOOK}: run `make book` first")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(BOOK))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _open(browser, url: str) -> str:
    """Load a page, wait for MathJax to finish typesetting, return the visible text."""
    browser.get(url)
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (window.MathJax && MathJax.Hub) { MathJax.Hub.Queue(() => done(true)); }"
        "else { done(false); }"
    )
    return browser.find_element("tag name", "body").text


def test_index_links_every_notebook_in_order(site, browser):
    _open(browser, site)
    hrefs = [a.get_attribute("href") for a in browser.find_elements("css selector", "nav a")]
    pages = [h for h in hrefs if h and "/notebooks/" in h]
    linked = list(dict.fromkeys(Path(urllib.parse.urlparse(h).path).stem for h in pages))
    assert [n for n in linked if n != "glossary"] == NOTEBOOKS
    for name in ("cli", "results", "speed", "scaling", "pitfalls", "notebooks/glossary"):
        assert any(h and h.endswith(f"/{name}.html") for h in hrefs), name


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_page_reads_as_executed(site, browser, name):
    text = _open(browser, f"{site}notebooks/{name}.html")
    assert "Traceback (most recent call last)" not in text
    assert not re.search(r"\w+Error: ", text), "an error message was printed on the page"
    assert "$$" not in text, "raw display math left untypeset"
    assert "executed on" in text  # the banner naming the data
    outputs = browser.find_elements("css selector", ".cell_output")
    assert outputs, "no cell output: the notebook was not executed"
    math, typeset = browser.execute_script(
        "const m = [...document.querySelectorAll('.math.notranslate')];"
        "return [m.length, m.filter(e => e.querySelector('.MathJax, .MathJax_Display')).length]"
    )
    assert typeset == math, f"{math - typeset} of {math} formulas not typeset"
    assert "\\(" not in text and "\\[" not in text, "raw TeX left on the page"
    if name[:2] in ("03", "04", "05", "06"):
        assert math > 0, "the formulas are missing"
    if name in TRAINING:
        widths = browser.execute_script(
            "return [...document.querySelectorAll('.cell_output img')].map(i => i.naturalWidth)"
        )
        assert widths and all(w > 0 for w in widths), widths
    if name.startswith("04"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)  # the whole page, for the build's record
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(height, 16000))
        browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
        browser.set_window_size(1280, 2000)


def test_no_broken_internal_link(site, browser):
    """Every link from one page of the book to another (and its #anchor) resolves."""
    pages = (
        ["index.html"]
        + [f"notebooks/{n}.html" for n in NOTEBOOKS]
        + [f"{n}.html" for n in ("cli", "results", "speed", "scaling", "pitfalls")]
        + ["notebooks/glossary.html"]
    )
    html: dict[str, str] = {}

    def fetch(url: str) -> str:
        if url not in html:
            with urllib.request.urlopen(url, timeout=30) as response:
                html[url] = response.read().decode()
        return html[url]

    broken = []
    for page in pages:
        _open(browser, site + page)
        for a in browser.find_elements("css selector", "a[href]"):
            href = a.get_attribute("href")
            if not href.startswith(site):
                continue
            target, _, anchor = href.partition("#")
            try:
                body = fetch(target)
            except OSError as error:
                broken.append(f"{page} -> {href}: {error}")
                continue
            if anchor and f'id="{anchor}"' not in body:
                broken.append(f"{page} -> {href}: no #{anchor}")
        for img in browser.execute_script(
            "return [...document.images].filter(i => !i.naturalWidth).map(i => i.src)"
        ):
            if img.startswith(site):
                broken.append(f"{page}: image {img} did not load")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_glossary_terms_are_links_on_the_page(site, browser, name):
    """A term a notebook links to the glossary (``[term](glossary.md#anchor)``) is a link to
    that entry of the book's glossary page, not plain text."""
    source = (REPO / "notebooks" / f"{name}.md").read_text()
    wanted = set(re.findall(r"\]\(glossary\.md#([a-z0-9-]+)\)", source))
    _open(browser, site + f"notebooks/{name}.html")
    hrefs = {a.get_attribute("href") for a in browser.find_elements("css selector", "a[href]")}
    missing = {a for a in wanted if site + f"notebooks/glossary.html#{a}" not in hrefs}
    assert not missing, f"{name}: glossary terms shown without their link: {sorted(missing)}"
