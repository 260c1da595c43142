"""``bench.quality.reuse_forwards``: later rates reuse the first rate's model runs."""

from __future__ import annotations

import pytest

import ragpress
from bench.quality import reuse_forwards

DOCUMENTS = [
    "The oil should be changed every 15,000 km. The capacity with filter is 4.3 litres.",
    "Our spring campaign offers a free inspection of the cooling system.",
]


@pytest.mark.real_model
@pytest.mark.parametrize("method", ["relevance", "embedding-similarity"])
def test_each_input_runs_the_model_once_across_rates(method):
    compressor = ragpress.get_compressor(method)
    calls = []
    run = compressor.runner.run
    compressor.runner.run = lambda sequences: calls.append(len(sequences)) or run(sequences)
    reuse_forwards(compressor)
    texts = [compressor.compress(DOCUMENTS, "How much oil?", rate=0.5).text]
    first = len(calls)
    assert first == (2 if method == "relevance" else 1)  # relevance rereads its best sentences
    texts.append(compressor.compress(DOCUMENTS, "How much oil?", rate=0.25).text)
    assert len(calls) == first  # the second rate runs nothing new
    fresh = ragpress.get_compressor(method)
    assert texts == [fresh.compress(DOCUMENTS, "How much oil?", rate=r).text for r in (0.5, 0.25)]
