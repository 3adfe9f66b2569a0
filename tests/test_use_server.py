"""ncf_lib.use.service and ncf_lib.use.server: the answers equal the command line's, bad
requests get a clear 4xx, titles never run as code; a real server on a free port, stopped by
SIGTERM; the demo page in headless Chromium."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from ncf_lib.cli import main
from ncf_lib.use.foldin import FoldInConfig, fold_in
from ncf_lib.use.recommend import recommend
from ncf_lib.use.server import MAX_BODY, create_app
from ncf_lib.use.service import Service, checkpoint_and_data
from ncf_lib.use.similar import similar_items

fastapi_testclient = pytest.importorskip("fastapi.testclient")

EVIL = ["<script>window.hacked = 1</script>", '<img src=x onerror="window.hacked = 2">']


@pytest.fixture(scope="module")
def evil_checkpoint(tmp_path_factory):
    """A GMF trained one epoch on a folder whose movies file has titles that are HTML."""
    folder = tmp_path_factory.mktemp("evil-data")
    rng = np.random.default_rng(0)
    users, items = rng.integers(1, 61, 3000), rng.integers(1, 301, 3000)
    frame = pd.DataFrame(
        {"userId": users, "movieId": items, "rating": 4.0, "timestamp": np.arange(3000)}
    ).drop_duplicates(["userId", "movieId"])
    frame.to_csv(folder / "ratings.csv", index=False)
    titles = [EVIL[0], EVIL[1]] + [f"Movie {i} (2001)" for i in range(3, 301)]
    pd.DataFrame({"movieId": range(1, 301), "title": titles, "genres": "Drama"}).to_csv(
        folder / "movies.csv", index=False
    )
    out = tmp_path_factory.mktemp("ck")
    argv = ["train", "--dataset", str(folder), "--model", "gmf", "--epochs", "1", "--no-progress",
            "--no-log", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return next(out.glob("*.pt"))


@pytest.fixture(scope="module")
def service(ml_checkpoint):
    return Service.load(ml_checkpoint)


@pytest.fixture(scope="module")
def client(service):
    return fastapi_testclient.TestClient(create_app(service))


def test_known_users_new_users_and_similar_movies_are_the_command_lines(service, client):
    data, model = service.data, service.model
    items, probs = recommend(model, data.user_index("7"), 10, exclude=data.user_history(6))
    body = client.get("/users/7/recommendations", params={"k": 10}).json()
    assert [m["item_id"] for m in body["movies"]] == [str(data.item_ids[i]) for i in items]
    assert np.allclose([m["score"] for m in body["movies"]], probs)
    liked = np.array([data.item_index("1"), data.item_index("2")])
    folded = fold_in(model, [liked], FoldInConfig())
    items, _ = recommend(folded, 0, 5, exclude=liked)
    body = client.post("/recommendations", json={"liked": ["1", "Synthetic movie 0002"], "k": 5})
    assert [m["item_id"] for m in body.json()["movies"]] == [str(data.item_ids[i]) for i in items]
    assert [m["item_id"] for m in body.json()["liked"]] == ["1", "2"]
    items, _ = similar_items(model, data.item_index("3"), 4, ids=data.item_ids)
    body = client.get("/movies/3/similar", params={"k": 4}).json()
    assert body["movie"]["title"] == "Synthetic movie 0003"
    assert [m["item_id"] for m in body["movies"]] == [str(data.item_ids[i]) for i in items]


def test_search_health_page_and_the_documented_api(client):
    found = client.get("/search", params={"q": "movie 001"}).json()
    titles = [m["title"].lower() for m in found]  # every word of the query, anywhere
    assert len(titles) == 10 and all("movie" in t and "001" in t for t in titles)
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "NeuMF" and health["items"] == 200
    assert "<title>NCF recommendations</title>" in client.get("/").text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/users/{user_id}/recommendations", "/recommendations", "/search"} <= set(paths)


@pytest.mark.parametrize(
    "method, path, body, status, words",
    [
        ("get", "/users/99999/recommendations", None, 404, "user 99999 is not in"),
        ("get", "/users/7/recommendations?k=0", None, 422, "greater than or equal to 1"),
        ("get", "/users/7/recommendations?k=101", None, 422, "less than or equal to 100"),
        ("get", "/movies/99999/similar", None, 404, "nor is it a movie id"),
        (
            "post",
            "/recommendations",
            {"liked": ["Synthetic movie 0x01"]},
            404,
            "closest: Synthetic movie",
        ),
        ("post", "/recommendations", {"liked": []}, 422, "at least 1"),
        ("post", "/recommendations", {"liked": ["1"] * 51}, 422, "at most 50"),
        ("post", "/recommendations", b"{not json", 422, "JSON"),
    ],
)
def test_a_bad_request_gets_a_4xx_with_a_message(client, method, path, body, status, words):
    json = {"Content-Type": "application/json"}
    kwargs = {"content": body, "headers": json} if isinstance(body, bytes) else {"json": body}
    response = getattr(client, method)(path, **({} if body is None else kwargs))
    assert response.status_code == status
    assert words in response.json()["detail"]  # one line, for the page to show
    assert client.get("/health").status_code == 200  # the worker goes on


def test_an_oversized_body_is_refused_before_it_is_read(client):
    response = client.post("/recommendations", content=b"x" * (MAX_BODY + 1))
    assert response.status_code == 413 and "16,384 bytes" in response.json()["detail"]


def test_an_index_serves_what_the_model_scores(evil_checkpoint):
    exact, plain = Service.load(evil_checkpoint, index="exact"), Service.load(evil_checkpoint)
    user = str(plain.data.user_ids[5])
    assert exact.for_user(user, 10) == [
        {**m, "score": pytest.approx(np.log(m["score"] / (1 - m["score"])), abs=1e-4)}
        for m in plain.for_user(user, 10)
    ]  # the index scores logits, the model's list shows their sigmoid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(evil_checkpoint, tmp_path_factory):
    """``python -m ncf_lib serve`` on a free port, as a user starts it."""
    port = _free_port()
    cwd = tmp_path_factory.mktemp("serve-cwd")
    process = subprocess.Popen(
        [sys.executable, "-m", "ncf_lib", "serve", str(evil_checkpoint), "--port", str(port)],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    for _ in range(300):
        try:
            httpx.get(url + "health", timeout=1)
            break
        except httpx.TransportError:
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
    yield url, process, cwd
    if process.poll() is None:
        process.kill()


@pytest.mark.slow
def test_a_real_server_answers_and_stops_cleanly_on_sigterm(server):
    url, process, cwd = server
    assert httpx.get(url + "health").json()["status"] == "ok"
    body = httpx.get(url + "search", params={"q": "script"}).json()
    assert body[0]["title"] == EVIL[0]  # returned as data, shown as text by the page
    with httpx.Client() as session:
        assert all(
            session.get(url + "users/3/recommendations").status_code == 200 for _ in range(20)
        )
    assert list(cwd.iterdir()) == []  # nothing written


@pytest.mark.slow
def test_new_users_sent_at_once_get_what_each_gets_alone(server, evil_checkpoint):
    url, process, _ = server
    alone = Service.load(evil_checkpoint)
    liked = [[str(i), str(i + 1), str(i + 7)] for i in range(3, 19, 2)]  # 8 new users
    with httpx.Client(timeout=60) as session, ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(
            lambda ids: session.post(url + "recommendations", json={"liked": ids, "k": 5}).json(),
            liked,
        ))  # fmt: skip
    for ids, body in zip(liked, bodies):
        expected = alone.for_new_user(ids, k=5)[1]
        assert [m["item_id"] for m in body["movies"]] == [m["item_id"] for m in expected]
    assert process.poll() is None


@pytest.mark.slow
def test_the_demo_page_in_a_browser(server, browser):
    url, _, _ = server
    browser.get(url)
    wait = _waiter(browser)
    wait(lambda b: "GMF (epoch" in b.find_element("id", "about").text)
    for query in ("Movie 3 (2001)", "Movie 4 (2001)"):
        box = browser.find_element("id", "search")
        box.clear()
        box.send_keys(query)
        browser.find_element("css selector", "#search-form button").click()
        wait(lambda b, query=query: query in b.find_element("id", "found").text)
        browser.find_element("css selector", "#found li button").click()
    wait(lambda b: "likes 2 movies" in b.find_element("id", "list-title").text)
    titles = browser.execute_script(
        "return [...document.querySelectorAll('#recommendations li')].map(li => li.textContent)"
    )
    assert len(titles) == 10 and all(t.startswith(("Movie ", "<")) for t in titles)
    browser.find_element("id", "user").send_keys("5")
    browser.find_element("css selector", "#user-form button").click()
    wait(lambda b: "For user 5" in b.find_element("id", "list-title").text)
    box = browser.find_element("id", "search")
    box.clear()
    box.send_keys("script")  # the titles that are HTML: shown, never run
    browser.find_element("css selector", "#search-form button").click()
    wait(lambda b: EVIL[0] in b.find_element("id", "found").text)
    assert browser.execute_script("return window.hacked === undefined")
    box.clear()
    box.send_keys("no such title anywhere")
    browser.find_element("css selector", "#search-form button").click()
    wait(lambda b: "No movie matches" in b.find_element("id", "message").text)
    browser.find_element("id", "user").clear()
    browser.find_element("id", "user").send_keys("123456")
    browser.find_element("css selector", "#user-form button").click()
    wait(lambda b: "is not in" in b.find_element("id", "message").text)


@pytest.mark.slow
def test_sigterm_stops_the_server(server):
    _, process, _ = server
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def _waiter(browser):
    from selenium.webdriver.support.ui import WebDriverWait

    return lambda condition: WebDriverWait(browser, 20).until(condition)


def test_checkpoint_and_data_is_what_the_command_line_reads(ml_checkpoint):
    ckpt, data = checkpoint_and_data(ml_checkpoint)
    assert data.fingerprint == ckpt.fingerprint and data.n_items == 200
