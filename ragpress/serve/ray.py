"""The same app as a Ray Serve deployment: ``@serve.ingress`` mounts it, ``@serve.batch``
batches it, replicas and autoscaling come from a config file.

    serve run ragpress.serve.ray:app                       # defaults, one replica
    serve run ragpress/serve/ray.yaml                      # replicas, autoscaling, options
    ragpress serve --ray --replicas 2                      # the same from the ragpress CLI

Each replica builds its own :class:`RayService` (the compressors loaded once per replica
process) and hands it to the app's routes through :func:`replica_service`. Ray's proxy spreads
requests over replicas; inside a replica ``@serve.batch`` gathers concurrent requests into one
``compress_batch`` per method, and a bounded count of requests in the replica answers 503 with
``Retry-After`` beyond ``max_queue`` (Ray's own ``max_queued_requests`` bounds the proxy's
queue the same way).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from ray import serve
from ray.serve import Application

from ragpress.serve.app import create_app
from ragpress.serve.batching import BatchReport, Outcome, QueueFull, run_isolated
from ragpress.serve.service import CompressionService, ServeConfig
from ragpress.types import CompressionRequest

_Item = tuple[str, CompressionRequest, float]

#: Ray's own per-replica limit on concurrent requests (its default, 5, would starve batching).
MAX_ONGOING_REQUESTS = 64

_replica: dict[str, CompressionService] = {}


def replica_service() -> CompressionService:
    """This replica's service (each replica is its own process)."""
    if "service" not in _replica:
        raise RuntimeError("no ragpress service in this process: is the deployment running?")
    return _replica["service"]


def _set_replica_service(service: CompressionService) -> None:
    _replica["service"] = service


class RayService(CompressionService):
    """A :class:`CompressionService` that batches with ``@serve.batch``."""

    def __init__(self, config: ServeConfig | None = None) -> None:
        super().__init__(config)
        self._in_replica = 0
        self._batch_seconds = 0.0
        # serve.batch's setters, so the config (not the decorator's defaults) sizes batches.
        self._batched.set_max_batch_size(self.config.max_batch_size)  # type: ignore[attr-defined]
        wait_s = self.config.max_wait_ms / 1000.0
        self._batched.set_batch_wait_timeout_s(wait_s)  # type: ignore[attr-defined]

    async def submit(self, method: str, requests: list[CompressionRequest]) -> list[Outcome]:
        self.check_ready()
        if self._in_replica + len(requests) > self.config.max_queue:
            batches = self._in_replica / self.config.max_batch_size + 1
            retry = max(1, math.ceil(batches * self._batch_seconds))
            raise QueueFull(method, self._in_replica, retry)
        self._in_replica += len(requests)
        try:
            now = time.perf_counter()
            done = await asyncio.gather(*(self._batched((method, r, now)) for r in requests))
        finally:
            self._in_replica -= len(requests)
        outcomes: list[Outcome] = []
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome
            outcomes.append(outcome)
        return outcomes

    def waiting(self, method: str) -> int:
        return self._in_replica

    async def close(self) -> None:
        return None

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _batched(self, items: list[_Item]) -> list[Outcome | Exception]:
        start = time.perf_counter()
        by_method: dict[str, list[int]] = defaultdict(list)
        for index, (method, _, _) in enumerate(items):
            by_method[method].append(index)
        answers: list[Outcome | Exception] = [RuntimeError("not run")] * len(items)
        for method, indices in by_method.items():
            begun = time.perf_counter()
            requests = [items[i][1] for i in indices]
            run = self.compressors[method].compress_batch
            results = await asyncio.to_thread(run_isolated, run, requests)
            seconds = time.perf_counter() - begun
            queued = [begun - items[i][2] for i in indices]
            self.metrics.batch(method, BatchReport(len(indices), queued, seconds))
            for i, waited, result in zip(indices, queued, results, strict=True):
                answers[i] = (
                    result
                    if isinstance(result, Exception)
                    else Outcome(result, len(indices), waited, seconds)
                )
        elapsed = time.perf_counter() - start
        self._batch_seconds = (
            elapsed if not self._batch_seconds else (0.8 * self._batch_seconds + 0.2 * elapsed)
        )
        return answers


fastapi_app = create_app(replica_service)


@serve.deployment(
    name="ragpress",
    max_ongoing_requests=MAX_ONGOING_REQUESTS,
    ray_actor_options={"num_cpus": 1},
)
@serve.ingress(fastapi_app)
class RagpressDeployment:
    """One replica: builds and loads its compressors, then serves the app."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        service = RayService(serve_config(options or {}))
        service.load()
        _set_replica_service(service)

    def check_health(self) -> None:
        if not replica_service().ready:
            raise RuntimeError("ragpress replica has not loaded its models")


def serve_config(options: Mapping[str, Any]) -> ServeConfig:
    """A :class:`ServeConfig` from a config file's ``args`` (its field names; ``methods`` as a
    list or a comma-separated string; ``api_key_env``: the variable holding the key)."""
    options = dict(options)
    if isinstance(options.get("methods"), str):
        options["methods"] = [m.strip() for m in options["methods"].split(",") if m.strip()]
    if "methods" in options:
        options["methods"] = tuple(options["methods"])
    variable = options.pop("api_key_env", None)
    if variable is not None:
        options["api_key"] = os.environ.get(variable) or _unset(variable)
    known = {field.name for field in fields(ServeConfig)}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown ragpress serve args {sorted(unknown)}; known: {sorted(known)}")
    config = ServeConfig(**options)
    config.check_methods()
    return config


def build(args: Mapping[str, Any] | None = None) -> Application:
    """Application builder for config files (``import_path: ragpress.serve.ray:build``):
    ``args`` are :class:`ServeConfig` fields, checked here, before any replica starts."""
    args = dict(args or {})
    serve_config(args)
    return RagpressDeployment.bind(args)  # type: ignore[attr-defined]


def run(
    args: Mapping[str, Any],
    *,
    replicas: int = 1,
    host: str = "127.0.0.1",
    port: int = 8000,
    address: str | None = None,
    blocking: bool = True,
) -> None:
    """Start (or join, with ``address``) a Ray cluster and serve the app on ``replicas``."""
    import ray

    ray.init(address=address, ignore_reinit_error=True)
    serve.start(http_options={"host": host, "port": port})
    config = serve_config(args)
    deployment = RagpressDeployment.options(  # type: ignore[attr-defined]
        num_replicas=replicas, max_queued_requests=config.max_queue * replicas
    )
    serve.run(deployment.bind(dict(args)), name="ragpress", route_prefix="/", blocking=blocking)


def _unset(variable: str) -> str:
    raise ValueError(f"api_key_env={variable!r} names an unset or empty environment variable")


#: ``serve run ragpress.serve.ray:app``: the default methods, one replica.
app = build()
