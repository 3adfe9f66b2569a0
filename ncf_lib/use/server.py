"""The recommendation service over HTTP: a FastAPI app around :class:`~ncf_lib.use.service.Service`
with a demo page at ``/`` and its JSON endpoints documented at ``/docs``.

``python -m ncf_lib serve CKPT`` runs it with uvicorn on 127.0.0.1. Every bad request gets a
4xx with a one-line ``detail``; nothing is written to disk.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from ncf_lib.errors import ConfigError, UnknownIdError, UserError
from ncf_lib.use.service import MAX_K, MAX_LIKED, Service

#: The largest request body accepted, in bytes (a new user's liked movies fit many times).
MAX_BODY = 16_384


class Movie(BaseModel):
    item_id: str = Field(description="the movie's original id, as in the ratings file")
    title: str | None = Field(description="its title (null when the data has none)")
    score: float | None = Field(
        None, description="sigmoid of the logit (a ranking score, not calibrated) or cosine"
    )


class Recommendations(BaseModel):
    model: str
    user: str = Field(description="the user's original id, or 'new' for a folded-in user")
    liked: list[Movie] = Field(default_factory=list, description="a new user's liked movies")
    movies: list[Movie]


class Similar(BaseModel):
    model: str
    movie: Movie
    movies: list[Movie]


class NewUser(BaseModel):
    liked: list[str] = Field(
        min_length=1, max_length=MAX_LIKED, description="original ids or exact titles"
    )
    k: int = Field(10, ge=1, le=MAX_K)


class Health(BaseModel):
    status: str
    model: str
    epoch: int
    dataset: str
    users: int
    items: int
    titles: bool
    index: str


def _one_line(errors) -> str:
    """FastAPI's validation errors as one line: ``k: Input should be ...; liked: ...``."""
    parts = []
    for error in errors:
        names = [str(p) for p in error["loc"] if isinstance(p, str)]
        where = next((n for n in reversed(names) if n not in ("body", "query", "path")), None)
        parts.append(f"{where or names[0] if names else 'request'}: {error['msg']}")
    return "; ".join(parts)


def _error(status: int, err: Exception) -> HTTPException:
    return HTTPException(status, str(err))


def create_app(service: Service) -> FastAPI:
    """The app serving ``service``: loaded once, shared by every request. The requests that
    score with the model (a millisecond or two) run in the event loop itself, one at a time;
    new users' fold-ins, longer, run one after another in one worker thread of their own (so
    the event loop keeps answering, and the memory they use is reused by the next one rather
    than held by many threads)."""
    folding = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fold-in")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        folding.shutdown(cancel_futures=True)

    app = FastAPI(
        title="NCF recommendations",
        description=f"{service.about['model']} trained on {service.about['dataset']}",
        lifespan=lifespan,
    )
    K = Query(10, ge=1, le=MAX_K, description="how many movies")

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
            return JSONResponse(
                {"detail": f"request body over {MAX_BODY:,} bytes"}, status_code=413
            )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc.errors())}, status_code=422)

    def answer(method, *args):
        try:
            return method(*args)
        except UnknownIdError as err:
            raise _error(404, err) from None
        except (ConfigError, UserError) as err:
            raise _error(422, err) from None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files("ncf_lib.use").joinpath("page.html").read_text()

    @app.get("/health", response_model=Health)
    async def health() -> dict:
        return {"status": "ok", **service.about}

    @app.get("/users/{user_id}/recommendations", response_model=Recommendations)
    async def known_user(user_id: str = Path(description="original user id"), k: int = K) -> dict:
        movies = answer(service.for_user, user_id, k)
        return {"model": service.about["model"], "user": user_id, "movies": movies}

    @app.post("/recommendations", response_model=Recommendations)
    async def new_user(request: NewUser) -> dict:  # tens of ms of training: not in the loop
        liked, movies = await asyncio.get_running_loop().run_in_executor(
            folding, answer, service.for_new_user, request.liked, request.k
        )
        return {"model": service.about["model"], "user": "new", "liked": liked, "movies": movies}

    @app.get("/movies/{item_id}/similar", response_model=Similar)
    async def similar(item_id: str = Path(description="original id or exact title"), k: int = K):
        movie, movies = answer(service.similar, item_id, k)
        return {"model": service.about["model"], "movie": movie, "movies": movies}

    @app.get("/search", response_model=list[Movie])
    async def search(q: str = Query(max_length=200), limit: int = K) -> list[dict]:
        return answer(service.search, q, limit)

    return app
