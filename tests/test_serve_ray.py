"""The app as a real local Ray Serve deployment (one replica, two CPUs), through the client
and the LangChain adapter; results compared with in-process calls."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import yaml

import ragpress
from ragpress.remote import RemoteCompressor
from ragpress.serve.server import free_port, wait_ready
from ragpress.serve.wire import comparable

ray = pytest.importorskip("ray")  # installed by the serve extra (make install)
from ray import serve  # noqa: E402

import ragpress.serve.ray as ray_serve  # noqa: E402

KEY = "ray-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
CONFIG = Path(ray_serve.__file__).with_name("ray.yaml")


@pytest.fixture(scope="module")
def ray_url():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAGPRESS_RAY_TEST_KEY", KEY)  # replicas inherit the driver's environment
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        args = {
            "methods": "random,first-k",
            "max_batch_size": 8,
            "max_wait_ms": 20,
            "api_key_env": "RAGPRESS_RAY_TEST_KEY",
        }
        serve.run(
            ray_serve.RagpressDeployment.options(num_replicas=1).bind(args),
            name="ragpress",
            route_prefix="/",
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, 180)
            yield url
        finally:
            serve.shutdown()
            ray.shutdown()


def items(count: int) -> list[dict]:
    return [
        {
            "context": [f"Pump {i} runs hot when the filter clogs.", f"Check valve {i} weekly."],
            "query": f"When does pump {i} run hot?",
            "rate": 0.3 + 0.05 * (i % 8),
        }
        for i in range(count)
    ]


def test_ray_deployment_batches_and_matches_in_process(ray_url):
    remote = RemoteCompressor(ray_url, api_key=KEY)
    assert remote.method == "random"
    requests = items(32)

    async def call_all():
        return await asyncio.gather(*(remote.acompress(**item) for item in requests))

    served = asyncio.run(call_all())
    local = ragpress.get_compressor("random")
    assert [comparable(r) for r in served] == [comparable(local.compress(**i)) for i in requests]
    metrics = httpx.get(f"{ray_url}/metrics", headers=AUTH).text
    sums = [line for line in metrics.splitlines() if line.startswith("ragpress_batch_size_sum")]
    counts = [line for line in metrics.splitlines() if line.startswith("ragpress_batch_size_count")]
    total, calls = float(sums[0].split()[-1]), float(counts[0].split()[-1])
    assert total >= 32 and calls < total  # @serve.batch put several requests in one call


def test_ray_status_codes(ray_url):
    assert httpx.get(f"{ray_url}/healthz").status_code == 200
    assert httpx.get(f"{ray_url}/v1/methods").status_code == 401
    bad = httpx.post(f"{ray_url}/v1/compress", json={"context": "t", "rate": 2}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["detail"] == "rate must be in (0, 1], got 2"
    big = httpx.post(f"{ray_url}/v1/compress", content=b"x" * (8 * 2**20 + 1), headers=AUTH)
    assert big.status_code == 413


def test_ray_through_the_langchain_adapter(ray_url):
    from langchain_core.documents import Document

    from ragpress.integrations.langchain import RagpressCompressor

    remote = RemoteCompressor(ray_url, "first-k", api_key=KEY)
    documents = [Document(page_content=c, id=str(i)) for i, c in enumerate(items(2)[1]["context"])]
    served = RagpressCompressor(remote, rate=0.5).compress_documents(documents, "pump?")
    local = RagpressCompressor("first-k", rate=0.5).compress_documents(documents, "pump?")
    assert [(d.id, d.page_content, d.metadata) for d in served] == [
        (d.id, d.page_content, d.metadata) for d in local
    ]


def test_config_file_is_valid_and_builds():
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(yaml.safe_load(CONFIG.read_text()))
    (application,) = schema.applications
    assert application.import_path == "ragpress.serve.ray:build"
    autoscaling = application.deployments[0].autoscaling_config
    assert isinstance(autoscaling, dict) and autoscaling["max_replicas"] >= 2
    ray_serve.build(application.args)  # the args are ServeConfig fields
    with pytest.raises(ValueError, match="unknown ragpress serve args"):
        ray_serve.build({"replicas": 2})
    assert ray_serve.serve_config({}).methods == (ragpress.QUERY_METHOD,)
