"""The FastAPI application: scores by key, batches from one slice, what is published, health.

Every error is `{"error": {"code": ..., "message": ...}}`. Score responses carry an ETag naming
their slice and `Cache-Control: max-age=60, must-revalidate`; a GET with a matching
`If-None-Match` gets 304. `/healthz`, `/readyz` and `/openapi.json` need no token; everything
under `/v1` needs a bearer token whose scopes name the pipeline (or `*`).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from batchscore.serving.auth import TokenStore, allows
from batchscore.storage.warehouse.reading import (
    ScoresReader,
    SliceInfo,
    TableShape,
    UnknownPipeline,
    WarehouseDown,
)

MAX_BATCH = 1000
CACHE_CONTROL = "max-age=60, must-revalidate"
RETRY_AFTER_S = "5"
INT64 = re.compile(r"^-?[0-9]{1,19}$")
ALL = frozenset({"*"})


class ApiError(Exception):
    """An error response: HTTP status, a stable code, a message for people, extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class BatchRequest(BaseModel):
    keys: list[int | str]


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    async def warehouse_down(request: Request, exc: Exception) -> Response:
        headers = {"Retry-After": RETRY_AFTER_S}
        return error_response(503, "warehouse_unavailable", f"the warehouse is unavailable: {exc}", headers)

    async def unknown_pipeline(request: Request, exc: Exception) -> Response:
        return error_response(404, "unknown_pipeline", str(exc.args[0]) if exc.args else str(exc))

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return error_response(422, "invalid_request", problems or "invalid request")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(WarehouseDown, warehouse_down)
    app.add_exception_handler(UnknownPipeline, unknown_pipeline)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)


def coerce_key(raw: object, shape: TableShape) -> int | str:
    """A key as the table stores it: integers (or decimal strings) for integer keys, strings otherwise."""
    if isinstance(raw, bool):
        raise ApiError(422, "malformed_key", f"key {raw!r}: {shape.entity_key} is an {shape.key_kind} key")
    if shape.key_kind == "string":
        return raw if isinstance(raw, str) else str(raw)
    if isinstance(raw, str) and INT64.match(raw):
        raw = int(raw)
    if not isinstance(raw, int) or not -(2**63) <= raw < 2**63:
        raise ApiError(422, "malformed_key", f"key {raw!r}: {shape.entity_key} is an integer key")
    return raw


def parse_as_of(as_of: str | None) -> date | None:
    if as_of is None:
        return None
    try:
        return date.fromisoformat(as_of)
    except ValueError:
        raise ApiError(422, "bad_date", f"as_of {as_of!r} is not a date (YYYY-MM-DD)") from None


def slice_fields(info: SliceInfo) -> dict[str, Any]:
    return {
        "run_date": info.run_date.isoformat(),
        "model_name": info.model_name,
        "model_version": info.model_version,
        "run_id": info.run_id,
        "published_at": info.published_at.isoformat(),
    }


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = [part.strip().removeprefix("W/") for part in header.split(",")]
    return "*" in candidates or etag in candidates


def caching_headers(info: SliceInfo) -> dict[str, str]:
    return {"ETag": info.etag, "Cache-Control": CACHE_CONTROL}


def authenticator(tokens: TokenStore | None) -> Any:
    """The dependency that turns a request's bearer token into its scopes (401 without a valid one)."""
    challenge = {"WWW-Authenticate": "Bearer"}

    def scopes(request: Request) -> frozenset[str]:
        if tokens is None:
            return ALL
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "a bearer token is required", challenge)
        found = tokens.scopes(token.strip())
        if found is None:
            raise ApiError(401, "unauthorized", "the bearer token is not valid", challenge)
        return found

    return scopes


def require(scopes: frozenset[str], pipeline: str) -> None:
    if not allows(scopes, pipeline):
        raise ApiError(403, "forbidden", f"this token may not read pipeline {pipeline!r}")


def create_app(reader: ScoresReader, tokens: TokenStore | None) -> FastAPI:
    """The API over `reader`'s warehouse; `tokens=None` serves without authentication."""
    app = FastAPI(title="batchscore scores", version="1", description=__doc__)
    add_error_handlers(app)
    add_health_routes(app, reader)
    auth = Depends(authenticator(tokens))
    add_pipeline_routes(app, reader, auth)
    add_score_routes(app, reader, auth)
    return app


def add_health_routes(app: FastAPI, reader: ScoresReader) -> None:
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> dict[str, str]:
        reader.ping()  # WarehouseDown: 503
        return {"status": "ready", "warehouse": reader.dialect}


def add_pipeline_routes(app: FastAPI, reader: ScoresReader, auth: Any) -> None:
    @app.get("/v1/pipelines", tags=["pipelines"])
    def list_pipelines(scopes: frozenset[str] = auth) -> dict[str, Any]:
        published = reader.pipelines()
        shown = [info.describe() for name, info in sorted(published.items()) if allows(scopes, name)]
        return {"pipelines": shown}

    @app.get("/v1/pipelines/{pipeline}", tags=["pipelines"])
    def get_pipeline(pipeline: str, scopes: frozenset[str] = auth) -> dict[str, Any]:
        require(scopes, pipeline)
        info = reader.pipelines().get(pipeline)
        if info is None:
            raise UnknownPipeline(f"no scores published for pipeline {pipeline!r}")
        return info.describe()


def add_score_routes(app: FastAPI, reader: ScoresReader, auth: Any) -> None:
    @app.get("/v1/pipelines/{pipeline}/scores/{entity_key}", tags=["scores"])
    def get_score(
        pipeline: str,
        entity_key: str,
        request: Request,
        as_of: str | None = None,
        scopes: frozenset[str] = auth,
    ) -> Response:
        require(scopes, pipeline)
        day = parse_as_of(as_of)
        _, shape = reader.table_for(pipeline)
        info, shape, rows = reader.lookup(pipeline, [coerce_key(entity_key, shape)], day)
        headers = caching_headers(info)
        if etag_matches(request.headers.get("if-none-match"), info.etag):
            return Response(status_code=304, headers=headers)
        if not rows:
            raise ApiError(
                404,
                "unknown_key",
                f"no score for {shape.entity_key}={entity_key} in {pipeline} {info.run_date}",
            )
        body = {"pipeline": pipeline, "entity_key": shape.entity_key, **rows[0], **slice_fields(info)}
        return JSONResponse(body, headers=headers)

    @app.post("/v1/pipelines/{pipeline}/scores:batch", tags=["scores"])
    def batch_scores(
        pipeline: str,
        batch: BatchRequest,
        as_of: str | None = None,
        scopes: frozenset[str] = auth,
    ) -> Response:
        require(scopes, pipeline)
        if len(batch.keys) > MAX_BATCH:
            raise ApiError(413, "too_many_keys", f"{len(batch.keys)} keys: at most {MAX_BATCH} per batch")
        day = parse_as_of(as_of)
        _, shape = reader.table_for(pipeline)
        keys = list(dict.fromkeys(coerce_key(key, shape) for key in batch.keys))
        info, shape, rows = reader.lookup(pipeline, keys, day)
        found = {row["key"] for row in rows}
        body = {
            "pipeline": pipeline,
            "entity_key": shape.entity_key,
            "slice": slice_fields(info),
            "scores": rows,
            "missing": [key for key in keys if key not in found],
        }
        return JSONResponse(body, headers=caching_headers(info))


def app_from_env() -> FastAPI:
    """The app for `uvicorn --factory`: the warehouse and tokens file from the environment (tokens required)."""
    from batchscore.settings import ConfigError, load_serve
    from batchscore.storage.warehouse import open_reader

    settings = load_serve()
    if settings.tokens_file is None:
        raise ConfigError("no tokens file: set BATCHSCORE_SERVE_TOKENS_FILE (or use insecure_app_from_env)")
    return create_app(open_reader(settings.warehouse_url), TokenStore(settings.tokens_file))


def insecure_app_from_env() -> FastAPI:
    """The app without authentication (`batchscore serve --insecure-no-auth`)."""
    from batchscore.settings import load_serve
    from batchscore.storage.warehouse import open_reader

    settings = load_serve()
    tokens = TokenStore(settings.tokens_file) if settings.tokens_file else None
    return create_app(open_reader(settings.warehouse_url), tokens)
