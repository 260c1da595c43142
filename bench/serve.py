"""Serving: in-process vs uvicorn (batched, and one request per model call) vs Ray Serve.

    python -m bench.serve --requests 64                  # the query default (relevance)
    python -m bench.serve --method first-k --requests 256 --name serve_first_k

Closed loop: C clients (1, 8, 32, 128) each send their next request when the last one
answered, until ``--requests`` (at least C) are done. Requests are QA items (question, gold
passage and ``--distractors`` others) at rate 0.5. Per backend and C: throughput, p50 / p95 /
p99 latency, mean batch size (from the ``x-ragpress-batch-size`` header), errors, and how
many responses differ from the in-process result of the same request (must be 0).

Backends: ``inprocess`` (C threads calling one shared compressor: no batching, no HTTP),
``uvicorn-b1`` (``ragpress serve --max-batch-size 1``: one request per model call),
``uvicorn`` (dynamic batching), ``ray`` (Ray Serve, ``--replicas`` replicas). The servers run
as their own processes, so the clients here do not share their interpreter.

Overload: ``--overload-clients`` clients against a server whose queue holds
``--overload-queue`` requests, without retries: every request must get its exact result or a
503, none lost or mixed up; p95 of the answered ones shows the latency stays bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.harness import _percentile, markdown_table, write_results
from bench.qa import load_items
from bench.reporting import Paragraph, Results, missing_note, num
from ragpress.defaults import QUERY_METHOD
from ragpress.serve.server import free_port, wait_ready
from ragpress.serve.wire import comparable, result_from_wire

#: The results this benchmark writes (bench/results/NAME.json) and the command that writes
#: each, as the Makefile runs it (bench.report names it when a result is missing).
COMMANDS = {
    "serve": "python -m bench.serve --requests 64",
    # A slow decoder served the same way (about a second per request on 2 cores).
    "serve_entropy": "python -m bench.serve --method entropy --requests 16 --clients 8 "
    "--items 16 --backends uvicorn-b1 uvicorn ray --overload-clients 32 --overload-queue 4 "
    "--name serve_entropy",
}
BACKENDS = ("inprocess", "uvicorn-b1", "uvicorn", "ray")


@dataclass
class Run:
    """What one backend at one concurrency did."""

    latencies: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    mismatches: int = 0
    lost: int = 0
    lost_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def row(self, method: str, backend: str, clients: int) -> dict[str, Any]:
        ok = self.statuses.get(200, 0)
        latencies = self.latencies or [float("nan")]
        return {
            "method": method,
            "backend": backend,
            "clients": clients,
            "requests": sum(self.statuses.values()) + self.lost,
            "ok": ok,
            "req/s": round(ok / self.seconds, 2) if self.seconds else 0.0,
            "p50_ms": round(_percentile(latencies, 50) * 1000, 1),
            "p95_ms": round(_percentile(latencies, 95) * 1000, 1),
            "p99_ms": round(_percentile(latencies, 99) * 1000, 1),
            "mean_batch": round(statistics.fmean(self.batch_sizes), 2) if self.batch_sizes else 0,
            "errors": sum(n for status, n in self.statuses.items() if status != 200) + self.lost,
            "503": self.statuses.get(503, 0),
            "mismatches": self.mismatches,
            "lost": self.lost,
            "lost_reasons": ", ".join(f"{k} x{v}" for k, v in self.lost_reasons.items()),
            "statuses": ", ".join(f"{k} x{v}" for k, v in sorted(self.statuses.items())),
        }


def workload(count: int, distractors: int, rate: float) -> list[dict[str, Any]]:
    items = load_items("dev", count, distractors=distractors)
    return [{"context": i.documents(), "query": i.question, "rate": rate} for i in items]


def in_process(compressor: Any, pool: list[dict], clients: int, total: int, expected) -> Run:
    run, lock = Run(), threading.Lock()

    def one(index: int) -> None:
        start = time.perf_counter()
        result = compressor.compress(**pool[index % len(pool)])
        elapsed = time.perf_counter() - start
        with lock:
            run.latencies.append(elapsed)
            run.batch_sizes.append(1)
            run.statuses[200] = run.statuses.get(200, 0) + 1
            run.mismatches += comparable(result) != expected[index % len(pool)]

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as executor:
        list(executor.map(one, range(total)))
    run.seconds = time.perf_counter() - start
    return run


async def over_http(
    url: str, method: str, pool: list[dict], clients: int, total: int, expected
) -> Run:
    """``clients`` closed-loop callers; no retries (a 503 is counted, not hidden)."""
    run = Run()
    jobs = iter(range(total))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def caller() -> None:
            for index in jobs:
                body = {**pool[index % len(pool)], "method": method}
                start = time.perf_counter()
                try:
                    response = await client.post("/v1/compress", json=body)
                except Exception as error:  # counted, never hidden: a request with no answer
                    run.lost += 1
                    reason = type(error).__name__
                    run.lost_reasons[reason] = run.lost_reasons.get(reason, 0) + 1
                    continue
                elapsed = time.perf_counter() - start
                run.statuses[response.status_code] = run.statuses.get(response.status_code, 0) + 1
                if response.status_code != 200:
                    continue
                run.latencies.append(elapsed)
                run.batch_sizes.append(int(response.headers.get("x-ragpress-batch-size", 1)))
                served = comparable(result_from_wire(response.json()))
                run.mismatches += served != expected[index % len(pool)]

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(clients)))
        run.seconds = time.perf_counter() - start
    return run


class UvicornProcess:
    """``ragpress serve`` in its own process."""

    def __init__(self, method: str, *, max_batch_size: int, max_queue: int, wait_ms: float):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "ragpress.cli", "serve", "--methods", method,
            "--port", str(self.port), "--max-batch-size", str(max_batch_size),
            "--max-queue", str(max_queue), "--max-wait-ms", str(wait_ms),
        ]  # fmt: skip
        # A file, not a pipe: nobody reads a pipe while the server runs, and a full one blocks it.
        self.log = tempfile.NamedTemporaryFile("w+", prefix="bench-serve-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> UvicornProcess:
        wait_ready(self.url, 900, lambda: None if self.process.poll() is None else "exited")
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=300)
        self.log.seek(0)
        errors = [line for line in self.log if "Error" in line or "Traceback" in line]
        if errors:
            print(f"server log ({self.log.name}) has errors:", *errors[-5:], sep="\n  ")
        self.log.close()


class RayCluster:
    """A local Ray with ``replicas`` replicas of the deployment."""

    def __init__(self, method: str, *, replicas: int, max_batch_size: int, max_queue: int,
                 wait_ms: float):  # fmt: skip
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.replicas = replicas
        self.args: dict[str, Any] = {"methods": method, "max_batch_size": max_batch_size,
                     "max_queue": max_queue, "max_wait_ms": wait_ms}  # fmt: skip

    def __enter__(self) -> RayCluster:
        import ray
        from ray import serve

        import ragpress.serve.ray as ray_serve

        ray.init(num_cpus=max(2, self.replicas), include_dashboard=False, log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": self.port})
        deployment = ray_serve.RagpressDeployment.options(  # type: ignore[attr-defined]
            num_replicas=self.replicas,
            max_queued_requests=self.args["max_queue"] * self.replicas,
            max_ongoing_requests=max(2 * self.args["max_batch_size"], 8),
        )
        serve.run(deployment.bind(self.args), name="ragpress", route_prefix="/")
        wait_ready(self.url, 900)
        return self

    def __exit__(self, *exc: object) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()


def server_for(backend: str, args: argparse.Namespace, queue: int) -> Any:
    if backend == "ray":
        return RayCluster(args.method, replicas=args.replicas, max_batch_size=args.max_batch_size,
                          max_queue=queue, wait_ms=args.max_wait_ms)  # fmt: skip
    batch = 1 if backend == "uvicorn-b1" else args.max_batch_size
    return UvicornProcess(args.method, max_batch_size=batch, max_queue=queue,
                          wait_ms=args.max_wait_ms)  # fmt: skip


def sweep(args: argparse.Namespace, pool: list[dict], expected: list[dict]) -> list[dict]:
    import ragpress

    rows = []
    for backend in args.backends:
        if backend == "inprocess":
            compressor = ragpress.get_compressor(args.method)
            compressor.compress(**pool[0])
            for clients in args.clients:
                run = in_process(compressor, pool, clients, max(args.requests, clients), expected)
                rows.append(_report(run.row(args.method, backend, clients)))
            continue
        queue = max(args.clients) * 2  # the sweep measures speed, not refusals
        with server_for(backend, args, queue) as server:
            for clients in args.clients:
                total = max(args.requests, clients)
                run = asyncio.run(
                    over_http(server.url, args.method, pool, clients, total, expected)
                )
                rows.append(_report(run.row(args.method, backend, clients)))
    return rows


def overload(args: argparse.Namespace, pool: list[dict], expected: list[dict]) -> list[dict]:
    rows = []
    clients, total = args.overload_clients, max(args.requests, args.overload_clients) * 2
    for backend in ("uvicorn", "ray"):
        if backend not in args.backends:
            continue
        with server_for(backend, args, args.overload_queue) as server:
            run = asyncio.run(over_http(server.url, args.method, pool, clients, total, expected))
            row = run.row(args.method, backend, clients)
            row["queue"] = args.overload_queue
            rows.append(_report(row))
    return rows


def _report(row: dict[str, Any]) -> dict[str, Any]:
    print(row, flush=True)
    return row


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default=QUERY_METHOD, help="the method served and timed")
    parser.add_argument("--requests", type=int, default=128, help="requests per cell (>= C)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--replicas", type=int, default=2, help="Ray Serve replicas")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--items", type=int, default=64, help="distinct QA items, cycled")
    parser.add_argument("--distractors", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--overload-clients", type=int, default=128)
    parser.add_argument("--overload-queue", type=int, default=16)
    parser.add_argument("--name", default="serve", help="results file: bench/results/NAME.*")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import ragpress

    started = time.perf_counter()
    pool = workload(args.items, args.distractors, args.rate)
    reference = ragpress.get_compressor(args.method)
    expected = [comparable(reference.compress(**item)) for item in pool]
    tokens = statistics.fmean(reference.tokenizer.count("\n\n".join(i["context"])) for i in pool)
    rows = sweep(args, pool, expected)
    overloaded = overload(args, pool, expected)
    notes = _notes(args, rows, overloaded, tokens, time.perf_counter() - started)
    command = shlex.join(["python", "-m", "bench.serve", *(argv or sys.argv[1:])])
    extra = {"overload (no client retries)": overloaded, "notes": notes}
    json_path, md_path = write_results(args.name, rows, command, extra)
    print(markdown_table(rows), "", markdown_table(overloaded), "", *notes, sep="\n")
    print(f"\nwrote {json_path} and {md_path}")
    bad = [r for r in rows + overloaded if r["mismatches"] or r["lost"]]
    bad += [r for r in rows if r["errors"]]
    bad += [r for r in overloaded if r["errors"] != r["503"]]
    return 1 if bad else 0


def _notes(args, rows, overloaded, tokens: float, seconds: float) -> list[str]:
    notes = [
        f"Method {args.method}; {args.items} distinct dev QA items (question, gold passage and "
        f"{args.distractors} distractor(s), mean {tokens:.0f} tokens) at rate {args.rate}; "
        f"max batch {args.max_batch_size}, max wait {args.max_wait_ms} ms; Ray Serve with "
        f"{args.replicas} replicas; the whole run took {seconds / 60:.1f} min; "
        f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.",
        "mismatches: responses that differ from the in-process result of the same request "
        "(everything but seconds/timings compared); lost: requests with no HTTP answer.",
    ]
    by = {(r["backend"], r["clients"]): r for r in rows}
    for clients in args.clients:
        one, batched = by.get(("uvicorn-b1", clients)), by.get(("uvicorn", clients))
        if one and batched and one["req/s"]:
            gain = batched["req/s"] / one["req/s"]
            notes.append(
                f"{clients} clients: dynamic batching {batched['req/s']} req/s vs one request "
                f"per model call {one['req/s']} req/s ({gain:.2f}x), mean batch "
                f"{batched['mean_batch']}."
            )
    for row in overloaded:
        notes.append(
            f"Overload on {row['backend']}: {row['clients']} clients, queue {row['queue']}: "
            f"{row['ok']} exact results, {row['503']} x 503, {row['mismatches']} mixed up, "
            f"{row['lost']} lost; p95 of answered {row['p95_ms']} ms."
        )
    return notes


# -- its section of bench/RESULTS.md ---------------------------------------------------------


def serve_paragraph(results: Results) -> str:
    """Throughput per backend at 32 clients (else the largest concurrency), correctness,
    overload."""
    result = results.get("serve")
    if result is None:
        return "**Serving**: " + missing_note("serve", COMMANDS)
    rows = result["rows"]
    levels = {row["clients"] for row in rows}
    most = 32 if 32 in levels else max(levels)  # the yardstick: batching at 32 clients
    at_most = ", ".join(
        f"{row['backend']} {num(row['req/s'])} req/s (p95 {num(row['p95_ms'], 0)} ms, "
        f"mean batch {num(row['mean_batch'])})"
        for row in rows
        if row["clients"] == most
    )
    mixed = sum(row["mismatches"] + row["lost"] for row in rows)
    sentences = [f"at {most} clients {at_most}", f"{mixed} responses differed or were lost"]
    for row in result.get("extra", {}).get("overload (no client retries)", []):
        sentences.append(
            f"overload on {row['backend']} ({row['clients']} clients, queue {row['queue']}): "
            f"{row['ok']} exact results and {row['503']} x 503, {row['mismatches']} mixed up, "
            f"{row['lost']} lost, p95 {num(row['p95_ms'], 0)} ms"
        )
    method = rows[0].get("method", "?")
    return f"**Serving** ({method}): " + "; ".join(sentences) + "."


#: Its paragraphs in "Where each compressor wins and loses" (bench/report.py orders them).
REPORT: dict[str, Paragraph] = {"serving": serve_paragraph}


if __name__ == "__main__":
    raise SystemExit(main())
