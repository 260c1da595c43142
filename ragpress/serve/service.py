"""What the HTTP app serves, without HTTP: the loaded compressors, request parsing with the
library's own validation, and submission to the batchers.

:class:`CompressionService` batches with :class:`ragpress.serve.batching.Batcher` (one per
method); the Ray deployment (``ragpress.serve.ray``) subclasses it to batch with
``@serve.batch`` instead. Both answer with the same :class:`Outcome` objects, so the app
does not know which one it runs on.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ragpress.base import Compressor, _as_request
from ragpress.defaults import QUERY_METHOD
from ragpress.registry import check_options, get_compressor
from ragpress.serve.batching import Batcher, Outcome, QueueFull
from ragpress.serve.metrics import Metrics
from ragpress.serve.wire import LOAD_FAILED, REQUEST_KEYS, jsonable
from ragpress.types import CompressionRequest

DEFAULT_MAX_BODY_BYTES = 8 * 2**20


class InvalidRequest(ValueError):
    """A request the server refuses (422); ``kind`` is the library's exception type name."""

    def __init__(self, message: str, kind: str = "ValueError") -> None:
        super().__init__(message)
        self.kind = kind


class NotReady(RuntimeError):
    """The models are still loading, or ``failed`` to load (503; no retry then)."""

    def __init__(self, message: str, *, failed: bool = False) -> None:
        super().__init__(message)
        self.failed = failed
        self.kind = LOAD_FAILED if failed else "NotReady"


@dataclass(frozen=True)
class ServeConfig:
    """How a server runs. ``methods``: the names it serves, the first is its default;
    ``options``: constructor keywords per method (e.g. ``{"entropy": {"variant": "int8"}}``)."""

    methods: tuple[str, ...] = (QUERY_METHOD,)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    max_batch_size: int = 16
    max_wait_ms: float = 5.0
    max_queue: int = 256
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    api_key: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.methods, str) or not self.methods:
            raise ValueError("methods must be a non-empty sequence of method names")
        object.__setattr__(self, "methods", tuple(self.methods))
        unknown = set(self.options) - set(self.methods)
        if unknown:
            raise ValueError(f"options given for methods not served: {sorted(unknown)}")
        if self.max_batch_size < 1 or self.max_queue < 1 or self.max_wait_ms < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1, max_wait_ms >= 0")
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {self.max_body_bytes}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key is empty: set the variable or leave the key out")

    def check_methods(self, given: Collection[str] = ()) -> None:
        """Refuse an unknown method or option before any model loads, so a server with a typo
        in ``--methods`` stops at once instead of answering 503 forever (the names in ``given``
        are served by instances passed in, not built)."""
        for name in self.methods:
            if name not in given:
                check_options(name, self.options.get(name, {}))


class CompressionService:
    """The compressors of one server, loaded once, and their batchers."""

    def __init__(
        self,
        config: ServeConfig | None = None,
        *,
        compressors: Mapping[str, Compressor] | None = None,
    ) -> None:
        """``compressors``: instances to serve under the names of ``config.methods`` instead
        of building them (e.g. one shared with in-process code); the others are built."""
        self.config = config or ServeConfig()
        self.metrics = Metrics()
        self._given = dict(compressors or {})
        unknown = set(self._given) - set(self.config.methods)
        if unknown:
            raise ValueError(f"compressors given for methods not served: {sorted(unknown)}")
        self.compressors: dict[str, Compressor] = {}
        self._batchers: dict[str, Batcher] = {}
        self._ready = threading.Event()
        self.load_error: BaseException | None = None

    @property
    def default_method(self) -> str:
        return self.config.methods[0]

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def load(self) -> None:
        """Build every compressor and run one tiny request through each (models exported and
        sessions open before the first caller); ``ready`` turns true at the end."""
        try:
            self.config.check_methods(self._given)  # every method before any model loads
            for name in self.config.methods:
                compressor = self._given.get(name) or get_compressor(
                    name, **self.config.options.get(name, {})
                )
                compressor.compress(["Warm up the model. A second sentence."], "Warm up?")
                self.compressors[name] = compressor
        except BaseException as error:
            self.load_error = error
            raise
        self._ready.set()

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/methods`` answers: each method's flags and settings, the limits."""
        return {
            "default": self.default_method,
            "methods": {
                name: {
                    "requires_query": compressor.requires_query,
                    "question_aware": compressor.question_aware,
                    "default_rate": compressor.default_rate,
                    "settings": jsonable(compressor.settings),
                }
                for name, compressor in self.compressors.items()
            },
            "max_batch_size": self.config.max_batch_size,
            "max_queue": self.config.max_queue,
            "max_body_bytes": self.config.max_body_bytes,
        }

    def parse(self, body: Any, *, many: bool) -> tuple[str, list[CompressionRequest]]:
        """The method and validated requests of a ``/v1/compress`` (``many``: ``/batch``) body;
        raises :class:`InvalidRequest` with the library's own message (:class:`NotReady`
        while the models load: the checks read the loaded compressors)."""
        self.check_ready()
        if not isinstance(body, dict):
            raise InvalidRequest(f"the body must be a JSON object, got {type(body).__name__}")
        method = self._method(body.get("method"))
        allowed = {"items", "method"} if many else {*REQUEST_KEYS, "method"}
        unknown = set(body) - allowed
        if unknown:
            raise InvalidRequest(f"unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        items = body.get("items") if many else [{k: v for k, v in body.items() if k != "method"}]
        if not isinstance(items, list) or not items:
            raise InvalidRequest("items must be a non-empty list of requests")
        if len(items) > self.config.max_queue:
            raise InvalidRequest(
                f"{len(items)} items exceed the server's queue ({self.config.max_queue}): "
                "send them in smaller batches"
            )
        requests = [self._request(item, index, many) for index, item in enumerate(items)]
        compressor = self.compressors[method]
        if compressor.requires_query:  # refused before it is queued, with the library's message
            for index, request in enumerate(requests):
                if request.is_empty:
                    continue
                try:
                    compressor.check_query(request)
                except ValueError as error:
                    where = f"items[{index}]: " if many else ""
                    raise InvalidRequest(f"{where}{error}") from None
        return method, requests

    async def submit(self, method: str, requests: list[CompressionRequest]) -> list[Outcome]:
        """Queue ``requests`` for ``method``; raises :class:`QueueFull` or :class:`NotReady`."""
        self.check_ready()
        return await self._batcher(method).submit(requests)

    def check_ready(self) -> None:
        """Raise :class:`NotReady` until every model is loaded (``failed`` if loading did)."""
        if self.load_error is not None:
            raise NotReady(
                f"loading the models failed ({type(self.load_error).__name__}: "
                f"{self.load_error}); the server log has the details",
                failed=True,
            )
        if not self.ready:
            raise NotReady("the models are still loading: retry shortly")

    def waiting(self, method: str) -> int:
        batcher = self._batchers.get(method)
        return batcher.waiting if batcher is not None else 0

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()

    def _batcher(self, method: str) -> Batcher:
        if method not in self._batchers:
            self._batchers[method] = Batcher(
                self.compressors[method].compress_batch,
                name=method,
                max_batch_size=self.config.max_batch_size,
                max_wait_s=self.config.max_wait_ms / 1000.0,
                max_queue=self.config.max_queue,
                on_batch=lambda report: self.metrics.batch(method, report),
            )
        return self._batchers[method]

    def _method(self, name: Any) -> str:
        if name is None:
            return self.default_method
        if not isinstance(name, str) or name not in self.config.methods:
            raise InvalidRequest(
                f"method {name!r} is not served here; served: {', '.join(self.config.methods)} "
                "(start the server with --methods to add one)"
            )
        return name

    @staticmethod
    def _request(item: Any, index: int, many: bool) -> CompressionRequest:
        try:
            if not many and "context" not in item:
                raise ValueError("context is required: a string or a list of strings")
            return _as_request(item, index)
        except (ValueError, TypeError) as error:
            where = f"items[{index}]: " if many and not str(error).startswith("items[") else ""
            raise InvalidRequest(f"{where}{error}", type(error).__name__) from None


__all__ = [
    "CompressionService",
    "InvalidRequest",
    "NotReady",
    "Outcome",
    "QueueFull",
    "ServeConfig",
]
