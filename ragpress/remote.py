"""``RemoteCompressor``: a ``Compressor`` whose work runs on a ragpress server.

>>> compressor = RemoteCompressor("http://127.0.0.1:8000", method="entropy")
>>> compressor.compress(documents, question, rate=0.5)        # same result as in-process
>>> await compressor.acompress(documents, question, rate=0.5)

It is a ``Compressor``, so it goes wherever one does (``RagpressCompressor``, ``as_langchain``,
``RagpressPostprocessor``, pipelines' callers). When built it reads the method's description
from ``GET /v1/methods`` (whether it needs a query, its settings, the target tokenizer), so
adapters that check these up front see the server's compressor. A 503 (queue full, models
loading) or a refused connection is retried with exponential backoff, waiting at least what
the server's ``Retry-After`` asks; errors map back to the library's own: 422 raises the
``ValueError`` / ``TypeError`` the server's compressor raised, with its message, and a server
whose models failed to load (503, ``"error": "LoadFailed"``) a ``RuntimeError`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Sequence
from typing import Any

from ragpress.base import BatchItem, Compressor, batch_requests
from ragpress.serve.wire import LOAD_FAILED, result_from_wire
from ragpress.types import CompressionRequest, CompressionResult

try:
    import httpx
except ImportError as error:  # the extra is optional: say which one to install
    raise ImportError("httpx is not installed: pip install 'ragpress[serve]'") from error

__all__ = ["RemoteCompressor", "ServerBusy"]

# Compressing is idempotent: a call that died with its connection (refused, or a kept-alive
# connection the server closed as it was reused) is safe to send again.
_RETRIED = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class ServerBusy(RuntimeError):
    """The server still answered 503 (or could not be reached) after every retry."""


class RemoteCompressor(Compressor):
    """The client of a ragpress server, with the ``Compressor`` interface (sync and async)."""

    name = "remote"

    def __init__(
        self,
        url: str,
        method: str | None = None,
        *,
        api_key: str | None = None,
        api_key_env: str | None = None,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.25,
        max_backoff: float = 10.0,
        target_tokenizer: Any = None,
    ) -> None:
        """``url``: the server's base URL; ``method``: one it serves (default: its default).
        ``api_key`` or ``api_key_env`` (a variable holding it): the bearer key, when the server
        has one. ``timeout``: seconds per HTTP call; ``retries``: extra attempts on 503 or a
        refused connection. ``target_tokenizer``: the server's, unless given (per-document
        token counts in the adapters are measured with it)."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) URL, got {url!r}")
        if retries < 0 or backoff < 0 or timeout <= 0:
            raise ValueError("retries and backoff must be >= 0 and timeout > 0")
        if api_key_env is not None:
            api_key = os.environ.get(api_key_env) or _missing_key(api_key_env)
        self.url, self.retries = url.rstrip("/"), retries
        self.backoff, self.max_backoff, self.timeout = backoff, max_backoff, timeout
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.url, timeout=timeout, headers=self._headers)
        self._async_client: httpx.AsyncClient | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        served = self._describe()
        self.method = method or served["default"]
        if self.method not in served["methods"]:
            raise ValueError(
                f"method {self.method!r} is not served at {self.url}; served: "
                f"{', '.join(served['methods'])}"
            )
        self.info: dict[str, Any] = served["methods"][self.method]
        self.max_items: int = served["max_queue"]
        tokenizer = target_tokenizer or self.info["settings"].get("target_tokenizer")
        super().__init__(target_tokenizer=tokenizer)

    # What adapters read from a compressor: the served method's own flags and settings.
    @property
    def requires_query(self) -> bool:  # type: ignore[override]
        return bool(self.info["requires_query"])

    @property
    def question_aware(self) -> bool:
        return bool(self.info["question_aware"])

    @property
    def default_rate(self) -> float | None:  # type: ignore[override]
        return self.info["default_rate"]

    @property
    def settings(self) -> dict[str, Any]:
        return {**self.info["settings"], "url": self.url, "method": self.method}

    async def acompress(
        self,
        context: str | Sequence[str],
        query: str | None = None,
        *,
        rate: float | None = None,
        target_tokens: int | None = None,
    ) -> CompressionResult:
        """``compress`` without blocking the event loop."""
        request = CompressionRequest.create(context, query, rate=rate, target_tokens=target_tokens)
        return (await self._arun([request]))[0]

    async def acompress_batch(self, items: Sequence[BatchItem]) -> list[CompressionResult]:
        """``compress_batch`` without blocking the event loop."""
        return await self._arun(batch_requests(items))

    def close(self) -> None:
        self._client.close()

    async def aclose(self) -> None:
        self._client.close()
        if self._async_client is not None:
            await self._async_client.aclose()

    def _run(self, requests: list[CompressionRequest]) -> list[CompressionResult]:
        # Every request goes to the server, empty or without a query too: the served
        # compressor answers them itself (pass-through, its own error), as it would in-process.
        if not requests:
            return []
        start = time.perf_counter()
        results = self._compress_batch(requests)
        elapsed = (time.perf_counter() - start) / len(requests)
        for result in results:
            result.seconds = elapsed
        return results

    def _compress_batch(self, requests: Sequence[CompressionRequest]) -> list[CompressionResult]:
        results: list[CompressionResult] = []
        for chunk in self._chunks(requests):
            response = self._send(lambda body=chunk: self._client.post(**self._call(body)))
            results += self._results(response, len(chunk))
        return results

    async def _arun(self, requests: list[CompressionRequest]) -> list[CompressionResult]:
        if not requests:
            return []
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_loop is not loop:
            # An async client's connections belong to one event loop: a new loop (a second
            # asyncio.run) gets its own client.
            self._async_client = httpx.AsyncClient(
                base_url=self.url, timeout=self.timeout, headers=self._headers
            )
            self._async_loop = loop
        client = self._async_client
        start = time.perf_counter()
        results: list[CompressionResult] = []
        for chunk in self._chunks(requests):
            response = await self._asend(lambda body=chunk: client.post(**self._call(body)))
            results += self._results(response, len(chunk))
        elapsed = (time.perf_counter() - start) / len(requests)
        for result in results:
            result.seconds = elapsed
        return results

    def _chunks(self, requests: Sequence[CompressionRequest]) -> list[list[CompressionRequest]]:
        size = max(1, self.max_items)
        return [list(requests[i : i + size]) for i in range(0, len(requests), size)]

    def _call(self, requests: list[CompressionRequest]) -> dict[str, Any]:
        """The path and JSON of one call: ``/v1/compress`` for one request, ``/batch`` else."""
        items = [_body(request) for request in requests]
        if len(items) == 1:
            return {"url": "/v1/compress", "json": {**items[0], "method": self.method}}
        return {"url": "/v1/compress/batch", "json": {"items": items, "method": self.method}}

    def _describe(self) -> dict[str, Any]:
        response = self._send(lambda: self._client.get("/v1/methods"))
        _raise_for(response, self.url)
        return response.json()

    def _send(self, call: Any) -> httpx.Response:
        for attempt in range(self.retries + 1):
            try:
                response = call()
            except _RETRIED as error:
                if attempt == self.retries:
                    raise ServerBusy(f"cannot reach the ragpress server at {self.url}") from error
                time.sleep(self._delay(attempt, None))
                continue
            if not _retried(response) or attempt == self.retries:
                return response
            time.sleep(self._delay(attempt, response))
        raise AssertionError("unreachable")

    async def _asend(self, call: Any) -> httpx.Response:
        for attempt in range(self.retries + 1):
            try:
                response = await call()
            except _RETRIED as error:
                if attempt == self.retries:
                    raise ServerBusy(f"cannot reach the ragpress server at {self.url}") from error
                await asyncio.sleep(self._delay(attempt, None))
                continue
            if not _retried(response) or attempt == self.retries:
                return response
            await asyncio.sleep(self._delay(attempt, response))
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Exponential backoff with jitter, never shorter than the server's Retry-After."""
        delay = self.backoff * 2**attempt * (0.5 + random.random())
        if response is not None:
            with contextlib.suppress(ValueError):  # an HTTP date: keep our own backoff
                delay = max(delay, float(response.headers.get("retry-after", 0)))
        return min(delay, self.max_backoff)

    def _results(self, response: httpx.Response, count: int) -> list[CompressionResult]:
        _raise_for(response, self.url)
        data = response.json()
        wires = [data] if count == 1 else data["results"]
        return [result_from_wire(wire) for wire in wires]


def _body(request: CompressionRequest) -> dict[str, Any]:
    context: str | list[str] = list(request.documents) if request.is_list else request.context
    return {
        "context": context,
        "query": request.query,
        "rate": request.rate,
        "target_tokens": request.target_tokens,
    }


def _retried(response: httpx.Response) -> bool:
    """A 503 that may pass: a full queue or models still loading, not models that failed."""
    return response.status_code == 503 and _error_kind(response) != LOAD_FAILED


def _error_kind(response: httpx.Response) -> str | None:
    try:
        return response.json().get("error")
    except ValueError:
        return None


def _raise_for(response: httpx.Response, url: str) -> None:
    """The library's own exception for an error response."""
    if response.is_success:
        return
    try:
        body = response.json()
        detail, kind = body.get("detail", response.text), body.get("error")
    except ValueError:
        detail, kind = response.text, None
    status = response.status_code
    if status == 422:
        raise (TypeError if kind == "TypeError" else ValueError)(detail)
    if status == 401:
        raise PermissionError(f"{url}: {detail} (pass api_key= or api_key_env=)")
    if status == 413:
        raise ValueError(f"{detail}: send fewer or shorter documents per call")
    if status == 503 and kind == LOAD_FAILED:
        raise RuntimeError(f"{url} cannot serve: {detail}")
    if status == 503:
        raise ServerBusy(f"{url} is busy after every retry: {detail}")
    raise RuntimeError(f"{url} answered {status}: {detail}")


def _missing_key(variable: str) -> str:
    raise ValueError(f"api_key_env={variable!r} names an unset or empty environment variable")
