"""The compression service: a real uvicorn server (and the CLI's), the client, the adapters.

Every served result is compared with the in-process result of the same request (everything
but the time taken). Cheap methods (first-k, random, metatoken) where the model is not the
point; embedding-similarity (MiniLM, package-shipped) for a real model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import ragpress
from ragpress.compressors.baselines import FirstWords
from ragpress.remote import RemoteCompressor, ServerBusy
from ragpress.serve.batching import Batcher, QueueFull, run_isolated
from ragpress.serve.server import BackgroundServer, free_port, wait_ready
from ragpress.serve.service import CompressionService, ServeConfig
from ragpress.serve.wire import comparable, result_from_wire, result_to_wire
from ragpress.types import CompressionRequest, CompressionResult, ScoredSpan

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHEAP = ("first-k", "random", "metatoken")


def passage(i: int) -> list[str]:
    return [
        f"Bulletin {i}: the pump {i} runs hot when the filter clogs. Replace it every {i} days.",
        f"Log line {i} repeats. Log line {i} repeats. Log line {i} repeats. Done {i}.",
    ]


def requests_mix(count: int) -> list[dict]:
    """Lists and single strings, rates and token budgets, with and without a question."""
    items = []
    for i in range(count):
        context = passage(i) if i % 3 else " ".join(passage(i))
        budget = {"rate": 0.3 + 0.05 * (i % 10)} if i % 2 else {"target_tokens": 8 + i}
        items.append({"context": context, "query": f"When does pump {i} run hot?", **budget})
    return items


def local_results(method: str, items: list[dict]) -> list[dict]:
    compressor = ragpress.get_compressor(method)
    return [comparable(compressor.compress(**item)) for item in items]


@pytest.fixture(scope="module")
def server():
    service = CompressionService(
        ServeConfig(methods=CHEAP, api_key=KEY, max_batch_size=8, max_wait_ms=20)
    )
    with BackgroundServer(service) as running:
        yield running


def test_concurrent_callers_get_their_own_in_process_result(server):
    items = requests_mix(48)
    for method in ("random", "first-k"):
        remote = RemoteCompressor(server.url, method, api_key=KEY)

        async def call_all(remote=remote):
            return await asyncio.gather(*(remote.acompress(**item) for item in items))

        served = asyncio.run(call_all())
        assert [comparable(result) for result in served] == local_results(method, items)
        again = asyncio.run(call_all())  # a new event loop: the client follows it
        assert [comparable(r) for r in again] == [comparable(r) for r in served]
    metrics = httpx.get(f"{server.url}/metrics", headers=AUTH).text
    sums = _metric(metrics, 'ragpress_batch_size_sum{method="random"}')
    counts = _metric(metrics, 'ragpress_batch_size_count{method="random"}')
    assert sums == 96 and counts < 96  # requests shared model calls


def test_batch_endpoint_and_sync_client_match_in_process(server):
    items = requests_mix(12)
    remote = RemoteCompressor(server.url, "metatoken", api_key=KEY)
    served = remote.compress_batch(items)
    expected = ragpress.get_compressor("metatoken").compress_batch(items)
    assert [comparable(r) for r in served] == [comparable(r) for r in expected]
    single = remote.compress(" ".join(passage(3)))
    assert comparable(single) == comparable(
        ragpress.get_compressor("metatoken").compress(" ".join(passage(3)))
    )
    assert remote.settings["url"] == server.url and not remote.requires_query
    blank = ["", "   "]  # answered by the served compressor's own pass-through
    local_blank = ragpress.get_compressor("metatoken").compress(blank)
    assert comparable(remote.compress(blank)) == comparable(local_blank)


def test_methods_and_health(server):
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ready"  # no key needed
    described = httpx.get(f"{server.url}/v1/methods", headers=AUTH).json()
    assert described["default"] == "first-k" and set(described["methods"]) == set(CHEAP)
    default = RemoteCompressor(server.url, api_key=KEY)
    assert default.method == "first-k"
    with pytest.raises(ValueError, match="not served"):
        RemoteCompressor(server.url, "entropy", api_key=KEY)


@pytest.mark.parametrize("path", ["/v1/compress", "/v1/methods", "/metrics"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
def test_wrong_or_missing_key_is_401(server, path, headers):
    if path == "/v1/compress":
        response = httpx.post(f"{server.url}{path}", headers=headers, json={"context": "text"})
    else:
        response = httpx.get(f"{server.url}{path}", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_client_with_a_wrong_key_raises_permission_error(server):
    with pytest.raises(PermissionError, match="API key"):
        RemoteCompressor(server.url, api_key="wrong")


@pytest.mark.parametrize(
    "body",
    [
        {"context": 3},
        {"context": ["ok", 4]},
        {"context": "text", "rate": 2},
        {"context": "text", "rate": 0.5, "target_tokens": 3},
        {"context": "text", "query": 5},
        {"context": "text", "target_tokens": -1},
    ],
)
def test_bad_input_is_422_with_the_library_message(server, body):
    response = httpx.post(f"{server.url}/v1/compress", json=body, headers=AUTH)
    assert response.status_code == 422
    with pytest.raises((ValueError, TypeError)) as expected:
        CompressionRequest.create(**body)
    assert response.json() == {"detail": str(expected.value), "error": expected.type.__name__}
    remote = RemoteCompressor(server.url, api_key=KEY)
    with pytest.raises(expected.type, match="^" + re.escape(str(expected.value))):
        remote.compress(**body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": "q"}, "context is required"),
        ({"context": "t", "method": "entropy"}, "not served here"),
        ({"context": "t", "extra": 1}, "unknown keys"),
        ({"items": []}, "unknown keys"),
    ],
)
def test_malformed_bodies_are_422(server, body, message):
    response = httpx.post(f"{server.url}/v1/compress", json=body, headers=AUTH)
    assert response.status_code == 422 and message in response.json()["detail"]
    broken = httpx.post(f"{server.url}/v1/compress", content=b"{not json", headers=AUTH)
    assert broken.status_code == 422 and "not valid JSON" in broken.json()["detail"]
    batch = httpx.post(
        f"{server.url}/v1/compress/batch", json={"items": [{"context": "a"}, {}]}, headers=AUTH
    )
    assert batch.status_code == 422 and "items[1]" in batch.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/compress", "/v1/compress/batch"])
def test_deeply_nested_json_is_422_like_other_invalid_json(server, path):
    deep = b"[" * 100_000 + b"]" * 100_000  # 200 KB: the decoder recursed past Python's limit
    response = httpx.post(f"{server.url}{path}", content=deep, headers=AUTH)
    broken = httpx.post(f"{server.url}{path}", content=b"{not json", headers=AUTH)
    assert response.status_code == broken.status_code == 422, response.text
    assert "not valid JSON" in response.json()["detail"]
    assert response.json()["error"] == broken.json()["error"]


def test_oversize_body_is_413_declared_or_streamed(server):
    limit = 8 * 2**20  # the default
    body = b'{"context": "' + b"a" * limit + b'"}'
    declared = httpx.post(f"{server.url}/v1/compress", content=body, headers=AUTH)
    assert declared.status_code == 413 and str(limit) in declared.json()["detail"]

    def chunks():  # no Content-Length: the server counts while reading
        for start in range(0, len(body), 2**20):
            yield body[start : start + 2**20]

    streamed = httpx.post(f"{server.url}/v1/compress", content=chunks(), headers=AUTH)
    assert streamed.status_code == 413
    fits = {"context": "a " * 1000, "rate": 0.5}
    assert httpx.post(f"{server.url}/v1/compress", json=fits, headers=AUTH).status_code == 200


class GatedFirstWords(FirstWords):
    """first-k that waits for ``gate`` before each batch: holds the queue full on purpose."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.batches: list[int] = []
        self.held: list[int] = []  # the size of each batch that reached the gate

    def _compress_batch(self, requests):
        self.held.append(len(requests))
        self.gate.wait(timeout=60)
        self.batches.append(len(requests))
        return super()._compress_batch(requests)


def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds: on a busy machine requests can take seconds to arrive,
    so tests wait for the state they need instead of sleeping a fixed time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the server never reached the expected state"
        time.sleep(0.02)


class PoisonFirstWords(FirstWords):
    """first-k that refuses any context mentioning "poison", as a model might refuse input."""

    def _compress_batch(self, requests):
        for request in requests:
            if "poison" in request.context:
                raise ValueError("poison is not compressible")
        return super()._compress_batch(requests)


def test_full_queue_is_503_with_retry_after_and_nothing_is_lost():
    gated = GatedFirstWords()
    gated.gate.set()  # let the warm-up through
    config = ServeConfig(methods=("first-k",), max_batch_size=2, max_queue=3, max_wait_ms=0)
    with BackgroundServer(CompressionService(config, compressors={"first-k": gated})) as server:
        gated.gate.clear()
        items = requests_mix(12)
        statuses: dict[int, httpx.Response] = {}
        held = len(gated.held)

        def send(i: int) -> None:
            statuses[i] = httpx.post(f"{server.url}/v1/compress", json=items[i], timeout=60)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(items))]
        for thread in threads:
            thread.start()
        # all sent: one batch held at the gate, 3 waiting, the rest refused
        until(
            lambda: (
                len(gated.held) == held + 1
                and server.service.waiting("first-k") == 3
                and len(statuses) == len(items) - 3 - gated.held[-1]
            )
        )
        gated.gate.set()
        for thread in threads:
            thread.join()
        refused = [i for i, r in statuses.items() if r.status_code == 503]
        served = [i for i, r in statuses.items() if r.status_code == 200]
        assert len(refused) + len(served) == len(items) and refused and len(served) <= 5
        assert all(int(statuses[i].headers["retry-after"]) >= 1 for i in refused)
        expected = local_results("first-k", items)
        for i in served:
            assert comparable(result_from_wire(statuses[i].json())) == expected[i]


def hold_one_queue_one(threads, gated, held, server) -> None:
    """Start two requests one after the other: the first held at the gate, the second in the
    queue. Started together, the second could reach the one-place queue before the worker took
    the first from it, and be refused instead."""
    threads[0].start()
    until(lambda: len(gated.held) == held + 1)
    threads[1].start()
    until(lambda: server.service.waiting("first-k") == 1)


def test_client_retries_503_until_the_queue_drains():
    gated = GatedFirstWords()
    gated.gate.set()
    config = ServeConfig(methods=("first-k",), max_batch_size=1, max_queue=1, max_wait_ms=0)
    with BackgroundServer(CompressionService(config, compressors={"first-k": gated})) as server:
        gated.gate.clear()
        items = requests_mix(3)
        held = len(gated.held)
        holders = [
            threading.Thread(
                target=httpx.post, args=(f"{server.url}/v1/compress",), kwargs={"json": item}
            )
            for item in items[:2]
        ]
        hold_one_queue_one(holders, gated, held, server)
        full = httpx.post(f"{server.url}/v1/compress", json=items[2])
        assert full.status_code == 503
        threading.Timer(1.0, gated.gate.set).start()
        remote = RemoteCompressor(server.url, retries=6, backoff=0.2)
        start = time.perf_counter()
        result = remote.compress(**items[2])
        assert time.perf_counter() - start >= 0.9  # it waited for the gate, retrying
        assert comparable(result) == local_results("first-k", items[2:])[0]
        for thread in holders:
            thread.join()
        gated.gate.clear()
        impatient = RemoteCompressor(server.url, retries=1, backoff=0.01, max_backoff=0.05)
        blockers = [threading.Thread(target=impatient.compress, kwargs=item) for item in items[:2]]
        held = len(gated.held)
        hold_one_queue_one(blockers, gated, held, server)
        with pytest.raises(ServerBusy, match="busy"):
            impatient.compress(**items[2])
        gated.gate.set()
        for thread in blockers:
            thread.join()


def test_a_failing_request_fails_alone():
    config = ServeConfig(methods=("first-k",), max_batch_size=8, max_wait_ms=50)
    service = CompressionService(config, compressors={"first-k": PoisonFirstWords()})
    with BackgroundServer(service) as server:
        items = requests_mix(6)
        items[2] = {"context": "a poison pill in the batch", "rate": 0.5}
        remote = RemoteCompressor(server.url)

        async def call_all():
            return await asyncio.gather(
                *(remote.acompress(**item) for item in items), return_exceptions=True
            )

        outcomes = asyncio.run(call_all())
        assert isinstance(outcomes[2], ValueError) and "poison" in str(outcomes[2])
        expected = local_results("first-k", items[:2] + items[3:])
        assert [comparable(r) for r in outcomes[:2] + outcomes[3:]] == expected
        calls, requests = _batches(service, "first-k")
        assert calls < requests  # the poison shared a batch with others, and failed alone


def test_healthz_reports_loading_until_models_are_ready():
    gated = GatedFirstWords()  # its warm-up call waits at the gate: loading takes until set
    config = ServeConfig(methods=("first-k",))
    service = CompressionService(config, compressors={"first-k": gated})
    port = free_port()
    server = BackgroundServer(service, port=port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            health = httpx.get(f"{url}/healthz")
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert health.status_code == 503 and health.json()["status"] == "loading"
    early = httpx.post(f"{url}/v1/compress", json={"context": "too early"})
    assert early.status_code == 503 and early.headers["retry-after"] == "1"
    described = httpx.get(f"{url}/v1/methods")  # a RemoteCompressor built now waits
    assert described.status_code == 503 and described.headers["retry-after"] == "1"
    gated.gate.set()
    wait_ready(url, 30)
    assert httpx.post(f"{url}/v1/compress", json={"context": "now"}).status_code == 200
    server.stop()


class BrokenFirstWords(FirstWords):
    """first-k whose model cannot load: its warm-up call raises."""

    def _compress_batch(self, requests):
        raise OSError("weights file truncated")


def test_a_server_whose_models_failed_to_load_says_so_and_is_not_retried():
    service = CompressionService(
        ServeConfig(methods=("first-k",)), compressors={"first-k": BrokenFirstWords()}
    )
    server = BackgroundServer(service)
    server.start()  # not entered: entering waits for a ready server
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{server.url}/healthz").json()["status"] == "failed":
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
        answer = httpx.post(f"{server.url}/v1/compress", json={"context": "text"})
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="weights file truncated"):
            RemoteCompressor(server.url, "first-k", retries=3, backoff=2.0)
        assert time.monotonic() - started < 2.0  # no backoff: a retry would wait 1 s or more
    finally:
        server.stop()
    assert answer.status_code == 503 and "retry-after" not in answer.headers
    assert answer.json()["error"] == "LoadFailed"
    assert "loading the models failed" in answer.json()["detail"]
    assert "weights file truncated" in answer.json()["detail"]


def test_langchain_and_llamaindex_adapters_take_a_remote_compressor(server):
    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from ragpress.integrations.langchain import RagpressCompressor, as_langchain
    from ragpress.integrations.llamaindex import RagpressPostprocessor

    remote = RemoteCompressor(server.url, "first-k", api_key=KEY)
    documents = [
        Document(page_content=text, id=f"d{i}", metadata={"source": i})
        for i, text in enumerate(passage(1) + passage(2))
    ]
    question = "When does pump 2 run hot?"
    served = RagpressCompressor(remote, rate=0.4).compress_documents(documents, question)
    local = RagpressCompressor("first-k", rate=0.4).compress_documents(documents, question)
    assert _lc(served) == _lc(local) and served[0].id == "d0"
    served_async = asyncio.run(
        RagpressCompressor(remote, rate=0.4).acompress_documents(documents, question)
    )
    assert _lc(served_async) == _lc(local)

    inputs: list[dict[str, Any]] = [
        {"documents": documents[:2], "question": question},
        {"documents": documents[2:]},
    ]
    chain_served = as_langchain(remote, target_tokens=12).batch(inputs)
    chain_local = as_langchain("first-k", target_tokens=12).batch(inputs)
    assert [_lc(out["documents"]) for out in chain_served] == [
        _lc(out["documents"]) for out in chain_local
    ]

    nodes = [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=1.0)
        for i, t in enumerate(passage(4))
    ]
    bundle = QueryBundle(question)
    by_server = RagpressPostprocessor(remote, rate=0.5).postprocess_nodes(nodes, bundle)
    by_process = RagpressPostprocessor("first-k", rate=0.5).postprocess_nodes(nodes, bundle)
    assert [(n.node.node_id, n.node.get_content(), n.node.metadata) for n in by_server] == [
        (n.node.node_id, n.node.get_content(), n.node.metadata) for n in by_process
    ]


def _lc(documents) -> list[tuple]:
    return [(d.id, d.page_content, d.metadata) for d in documents]


@pytest.mark.real_model
def test_real_model_method_served_equals_in_process():
    config = ServeConfig(methods=("embedding-similarity",), max_batch_size=8, max_wait_ms=20)
    service = CompressionService(config)
    with BackgroundServer(service) as server:
        remote = RemoteCompressor(server.url)
        assert remote.requires_query
        items = requests_mix(16)

        async def call_all():
            return await asyncio.gather(*(remote.acompress(**item) for item in items))

        served = asyncio.run(call_all())
        assert [comparable(r) for r in served] == local_results("embedding-similarity", items)
        calls, requests = _batches(service, "embedding-similarity")
        assert requests == len(items) and calls < requests  # concurrent callers shared batches
        missing = httpx.post(f"{server.url}/v1/compress", json={"context": "No question."})
        assert missing.status_code == 422 and "query" in missing.json()["detail"]

        from langchain_core.documents import Document

        from ragpress.integrations.langchain import RagpressCompressor

        with pytest.raises(ValueError, match="compresses for a query"):
            RagpressCompressor(remote, rate=0.5).compress_documents(
                [Document(page_content="Some text.")], ""
            )


def test_cli_serve_with_an_api_key(monkeypatch):
    port = free_port()
    monkeypatch.setenv("RP_SERVE_TEST_KEY", KEY)
    env = dict(os.environ)
    command = [
        sys.executable, "-m", "ragpress.cli", "serve", "--methods", "first-k,metatoken",
        "--port", str(port), "--api-key-env", "RP_SERVE_TEST_KEY", "--max-queue", "32",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(
            url, 120, lambda: None if process.poll() is None else f"exit {process.returncode}"
        )
        remote = RemoteCompressor(url, "metatoken", api_key_env="RP_SERVE_TEST_KEY")
        text = " ".join(passage(5))
        expected = ragpress.get_compressor("metatoken").compress(text)
        assert comparable(remote.compress(text)) == comparable(expected)
        assert httpx.get(f"{url}/v1/methods").status_code == 401
        assert httpx.get(f"{url}/v1/methods", headers=AUTH).json()["max_queue"] == 32
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_cli_serve_refuses_an_unset_key_variable():
    result = subprocess.run(
        [sys.executable, "-m", "ragpress.cli", "serve", "--api-key-env", "RP_UNSET_VAR_X"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "RP_UNSET_VAR_X"},
    )
    assert result.returncode == 2 and "RP_UNSET_VAR_X" in result.stderr


def test_cli_serve_stops_at_once_on_an_unknown_method():
    command = [sys.executable, "-m", "ragpress.cli", "serve", "--methods", "first-k,nope"]
    result = subprocess.run(
        [*command, "--port", str(free_port())], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "unknown compressor 'nope'" in result.stderr


def test_ray_config_refuses_an_unknown_method_before_any_replica_starts():
    pytest.importorskip("ray.serve")
    from ragpress.serve.ray import serve_config

    with pytest.raises(ValueError, match="unknown compressor 'nope'"):
        serve_config({"methods": "relevance,nope"})


def test_batcher_gathers_concurrent_requests_and_bounds_its_queue():
    seen: list[int] = []
    compressor = ragpress.get_compressor("first-k")

    def run(requests):
        seen.append(len(requests))
        return compressor.compress_batch(requests)

    async def scenario():
        batcher = Batcher(run, max_batch_size=4, max_wait_s=0.05, max_queue=6)
        requests = [CompressionRequest.create(f"word {i} " * 10, rate=0.5) for i in range(6)]
        outcomes = await asyncio.gather(*(batcher.submit([r]) for r in requests))
        with pytest.raises(QueueFull):
            await batcher.submit(requests + requests[:1])  # 7 never fit a queue of 6
        await batcher.close()
        return requests, outcomes

    requests, outcomes = asyncio.run(scenario())
    assert seen == [4, 2]
    for request, (outcome,) in zip(requests, outcomes, strict=True):
        alone = compressor.compress(request.context, rate=0.5)
        assert comparable(outcome.result) == comparable(alone)
    assert [outcome.batch_size for (outcome,) in outcomes] == [4, 4, 4, 4, 2, 2]


def test_run_isolated_keeps_errors_with_their_requests():
    poison = PoisonFirstWords()
    requests = [CompressionRequest.create(t, rate=0.5) for t in ("a b c d", "poison x", "e f g")]
    outcomes = run_isolated(poison.compress_batch, requests)
    assert isinstance(outcomes[1], ValueError)
    for outcome, text in ((outcomes[0], "a b c d"), (outcomes[2], "e f g")):
        assert isinstance(outcome, CompressionResult)
        assert outcome.text == poison.compress(text, rate=0.5).text


def test_wire_round_trip_keeps_every_field():
    compressor = ragpress.get_compressor("first-k+random")
    result = compressor.compress(passage(7), "q?", rate=0.5)
    result.scores = [ScoredSpan(0, 0, 3, 0.5)]
    result.document_scores = [0.9, 0.125]  # relevance sets these; no field may stay default
    unset = [f.name for f in dataclasses.fields(result) if getattr(result, f.name) == f.default]
    assert unset == []
    back = result_from_wire(json.loads(json.dumps(result_to_wire(result), allow_nan=False)))
    assert back == result  # the dataclass, seconds and timings included
    nothing = ragpress.types.CompressionResult(
        text="", original_tokens=5, compressed_tokens=0, method="x"
    )
    wire = result_to_wire(nothing)
    assert wire["ratio"] is None and result_from_wire(wire).ratio == float("inf")


def test_non_finite_scores_travel_as_strings_and_come_back():
    inf, nan = float("inf"), float("nan")
    scores = [ScoredSpan(0, 0, 1, -inf), ScoredSpan(0, 2, 3, nan), ScoredSpan(0, 4, 5, 0.25)]
    result = ragpress.types.CompressionResult(
        text="a", original_tokens=3, compressed_tokens=1, method="x", scores=scores,
        timings={"forward": inf}, settings={"beta": nan},
    )  # fmt: skip
    wire = result_to_wire(result)
    text = json.dumps(wire, allow_nan=False)  # what the server's JSONResponse requires
    back = result_from_wire(json.loads(text))
    assert back.scores is not None
    assert back.scores[0].score == -inf and math.isnan(back.scores[1].score)
    assert back.scores[2].score == 0.25 and wire["scores"][0][3] == "-inf"
    assert comparable(back) == comparable(result)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def _batches(service: CompressionService, method: str) -> tuple[float, float]:
    """(model calls, requests in them) from the service's batch-size histogram."""
    registry = service.metrics.registry
    labels = {"method": method}
    calls = registry.get_sample_value("ragpress_batch_size_count", labels)
    requests = registry.get_sample_value("ragpress_batch_size_sum", labels)
    assert calls is not None and requests is not None, f"no batches of {method} recorded"
    return calls, requests


def test_load_checks_every_methods_options_before_it_builds_one(monkeypatch):
    import ragpress.serve.service as module

    built: list[str] = []

    def recording(name, **options):
        built.append(name)
        return ragpress.get_compressor(name, **options)

    monkeypatch.setattr(module, "get_compressor", recording)
    config = ServeConfig(methods=("first-k", "random"), options={"random": {"zz": 1}})
    service = CompressionService(config)
    with pytest.raises(ragpress.UnknownOptionError, match="random has no option 'zz'"):
        service.load()
    assert built == [] and not service.ready and service.load_error is not None
