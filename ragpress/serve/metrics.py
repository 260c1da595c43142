"""Prometheus metrics of one server (or one Ray replica): requests, errors, batch sizes,
queue time and model time per method, in their own registry (several apps in one process,
as in tests, never collide)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ragpress.serve.batching import BatchReport

CONTENT_TYPE = CONTENT_TYPE_LATEST
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The counters and histograms ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ragpress_requests",
            "Compression requests answered, by method and HTTP status.",
            ["method", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "ragpress_errors",
            "Requests refused or failed, by reason (invalid, too_large, unauthorized, "
            "queue_full, not_ready, internal).",
            ["reason"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "ragpress_batch_size",
            "Requests per compress_batch call.",
            ["method"],
            buckets=_SIZES,
            registry=self.registry,
        )
        self.queue_seconds = Histogram(
            "ragpress_queue_seconds",
            "Time a request waited before its batch started.",
            ["method"],
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.model_seconds = Histogram(
            "ragpress_model_seconds",
            "Time of one compress_batch call.",
            ["method"],
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "ragpress_queue_depth",
            "Requests waiting for a batch.",
            ["method"],
            registry=self.registry,
        )

    def batch(self, method: str, report: BatchReport) -> None:
        self.batch_size.labels(method).observe(report.size)
        self.model_seconds.labels(method).observe(report.model_seconds)
        for seconds in report.queue_seconds:
            self.queue_seconds.labels(method).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
