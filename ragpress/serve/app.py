"""The FastAPI app: one factory, run alone under uvicorn or mounted by Ray Serve.

Routes:

* ``POST /v1/compress``: ``{"context": str | [str], "query"?, "rate"? | "target_tokens"?,
  "method"?}`` -> the ``CompressionResult`` as JSON (``ragpress.serve.wire``); headers
  ``x-ragpress-batch-size`` and ``x-ragpress-queue-ms`` say how it was served.
* ``POST /v1/compress/batch``: ``{"items": [request, ...], "method"?}`` -> ``{"results": [...]}``.
* ``GET /v1/methods``: the served methods, their flags and settings, the limits (503 like
  ``/v1/compress`` until the models are loaded).
* ``GET /healthz``: 200 once every model is loaded, 503 before (the only route without key).
* ``GET /metrics``: Prometheus text.

Status codes: 401 missing or wrong bearer key (when the server has one), 413 body over
``max_body_bytes``, 422 bad input (the library's own message, and its exception type under
``"error"``), 503 with ``Retry-After`` when the queue is full or the models are loading, and
503 with ``"error": "LoadFailed"`` and no ``Retry-After`` when they failed to load.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ragpress.serve.batching import QueueFull
from ragpress.serve.metrics import CONTENT_TYPE
from ragpress.serve.service import CompressionService, InvalidRequest, NotReady
from ragpress.serve.wire import result_to_wire

logger = logging.getLogger("ragpress.serve")

#: The one route that needs no API key: load balancers probe it.
OPEN_PATHS = frozenset({"/healthz"})

ServiceSource = CompressionService | Callable[[], CompressionService]


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body exceeds the server's limit of {limit} bytes")


def create_app(service: ServiceSource, *, load_in_background: bool = True) -> FastAPI:
    """The app serving ``service`` (or a callable returning it, called at start-up: the Ray
    deployment builds its service in each replica). Models load in a background thread at
    start-up, so ``/healthz`` can answer "loading" meanwhile."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = service if isinstance(service, CompressionService) else service()
        app.state.service = current
        if not current.ready and load_in_background:
            threading.Thread(target=_load, args=(current,), daemon=True).start()
        elif not current.ready:
            await asyncio.to_thread(current.load)
        yield
        await current.close()

    app = FastAPI(title="ragpress", summary="Compress RAG contexts", lifespan=lifespan)
    app.add_middleware(_Guard)

    @app.post("/v1/compress")
    async def compress(request: Request) -> Response:
        """Compress one context; the body holds the arguments of ``Compressor.compress``."""
        return await _compress(request, many=False)

    @app.post("/v1/compress/batch")
    async def compress_batch(request: Request) -> Response:
        """Compress ``items`` (each with the arguments of ``compress``) with one method."""
        return await _compress(request, many=True)

    @app.get("/v1/methods")
    async def methods(request: Request) -> Response:
        """The served methods (503 until they are loaded: a client built meanwhile waits)."""
        current = _service(request)
        try:
            current.check_ready()
        except NotReady as error:
            return _error_response(current, error)
        return JSONResponse(current.describe())

    @app.get("/healthz")
    async def healthz(request: Request) -> Response:
        current = _service(request)
        if current.ready:
            return JSONResponse({"status": "ready", "methods": list(current.compressors)})
        if current.load_error is not None:
            detail = f"{type(current.load_error).__name__}: {current.load_error}"
            return JSONResponse({"status": "failed", "detail": detail}, status_code=503)
        return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "1"})

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        current = _service(request)
        for method in current.config.methods:
            current.metrics.queue_depth.labels(method).set(current.waiting(method))
        return Response(current.metrics.render(), media_type=CONTENT_TYPE)

    return app


def _load(service: CompressionService) -> None:
    try:
        service.load()
    except BaseException:
        logger.exception("ragpress: loading the models failed; /healthz reports it")


def _service(request: Request) -> CompressionService:
    return request.app.state.service


async def _compress(request: Request, *, many: bool) -> Response:
    service = _service(request)
    method = "-"
    try:
        body = await _read_json(request, service.config.max_body_bytes)
        method, requests = service.parse(body, many=many)
        outcomes = await service.submit(method, requests)
    except Exception as error:
        response = _error_response(service, error)
    else:
        if many:
            response = JSONResponse(
                {
                    "results": [result_to_wire(outcome.result) for outcome in outcomes],
                    "batch_sizes": [outcome.batch_size for outcome in outcomes],
                }
            )
        else:
            (outcome,) = outcomes
            headers = {
                "x-ragpress-batch-size": str(outcome.batch_size),
                "x-ragpress-queue-ms": f"{outcome.queue_seconds * 1000:.3f}",
            }
            response = JSONResponse(result_to_wire(outcome.result), headers=headers)
    service.metrics.requests.labels(method, str(response.status_code)).inc()
    return response


async def _read_json(request: Request, limit: int) -> Any:
    chunks, size = [], 0
    async for chunk in request.stream():  # a chunked body has no Content-Length to check
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except ValueError as error:
        raise InvalidRequest(f"the body is not valid JSON: {error}") from None
    except RecursionError:  # e.g. "[" * 100000: the decoder recurses once per level
        raise InvalidRequest(
            "the body is not valid JSON: it nests arrays or objects too deeply to read"
        ) from None


def _error_response(service: CompressionService, error: Exception) -> JSONResponse:
    """The status and body for ``error``; counts it under its reason."""
    headers: dict[str, str] = {}
    if isinstance(error, BodyTooLarge):
        status, reason = 413, "too_large"
    elif isinstance(error, (InvalidRequest, ValueError, TypeError)):
        status, reason = 422, "invalid"  # ValueError/TypeError: raised by the compressor itself
    elif isinstance(error, QueueFull):
        status, reason = 503, "queue_full"
        headers["Retry-After"] = str(error.retry_after)
    elif isinstance(error, NotReady):
        status, reason = 503, "load_failed" if error.failed else "not_ready"
        if not error.failed:
            headers["Retry-After"] = "1"
    else:
        logger.error("ragpress: request failed", exc_info=error)
        status, reason = 500, "internal"
    service.metrics.errors.labels(reason).inc()
    kind = getattr(error, "kind", type(error).__name__)
    message = str(error) if status != 500 else f"{type(error).__name__}: {error}"
    return JSONResponse({"detail": message, "error": kind}, status_code=status, headers=headers)


class _Guard:
    """ASGI middleware: the bearer key on every route but ``/healthz`` (401), and the body size
    from ``Content-Length`` before any of it is read (413)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        service: CompressionService = scope["app"].state.service
        headers = {key.decode("latin-1"): value for key, value in scope["headers"]}
        refusal = None
        if scope["path"] not in OPEN_PATHS and not _authorized(service, headers):
            refusal = JSONResponse(
                {"detail": "missing or wrong API key: send 'Authorization: Bearer <key>'"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            service.metrics.errors.labels("unauthorized").inc()
        elif _declared_length(headers) > service.config.max_body_bytes:
            refusal = _error_response(service, BodyTooLarge(service.config.max_body_bytes))
        if refusal is not None:
            await refusal(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _authorized(service: CompressionService, headers: dict[str, bytes]) -> bool:
    key = service.config.api_key
    if key is None:
        return True
    scheme, _, token = headers.get("authorization", b"").decode("latin-1").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), key.encode())


def _declared_length(headers: dict[str, bytes]) -> int:
    try:
        return int(headers.get("content-length", b"0"))
    except ValueError:
        return 0
