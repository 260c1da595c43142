"""Adapters that save tokens for real: prompt text, one `method` argument, per-document figures,
round-tripping config, the LLM's own tokenizer, savings reported to callbacks and events.

These use cheap extractive methods (first-k, random) so they run without a model; the real
retrievers and models are in test_integrations.py and test_readme.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from ragpress import defaults, get_compressor

Document = pytest.importorskip("langchain_core.documents").Document
pytest.importorskip("llama_index.core")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.language_models.fake_chat_models import ParrotFakeChatModel  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402

from ragpress.integrations.langchain import (  # noqa: E402
    EVENT,
    RagpressCompressor,
    as_langchain,
    format_documents,
)
from ragpress.integrations.llamaindex import (  # noqa: E402
    RagpressCompressionEvent,
    RagpressPostprocessor,
)

QUESTION = "What is the first sign of fuel dilution?"
TEXTS = [
    "A level that rises between services is the first sign of fuel dilution. Change the oil "
    "and the filter, and update the engine software. The workshop checks it for free.",
    "Short note.",
]


def documents() -> list[Any]:
    return [
        Document(page_content=text, metadata={"source": f"{i}.txt"}, id=str(i))
        for i, text in enumerate(TEXTS)
    ]


class Events(BaseCallbackHandler):
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.seen.append((name, data))


def test_one_argument_name_and_the_query_aware_default(monkeypatch):
    monkeypatch.setattr(defaults, "QUERY_METHOD", "first-k")  # cheap stand-in, read at build
    assert as_langchain().compressor.name == "first-k"
    assert RagpressCompressor().compressor.name == "first-k"
    assert RagpressPostprocessor().compressor.name == "first-k"
    assert RagpressCompressor(method="random", seed=2).compressor.name == "random"
    assert as_langchain(method="random").compressor.name == "random"
    assert RagpressPostprocessor(method="random").compressor.name == "random"
    with pytest.raises(TypeError, match="method"):
        RagpressCompressor(method=3)


def test_each_document_reports_its_own_ratio():
    short_first = list(reversed(documents()))  # first-k keeps the short note whole
    compressed = RagpressCompressor("first-k", target_tokens=12).compress_documents(
        short_first, QUESTION
    )
    whole, cut = (document.metadata["ragpress"] for document in compressed)
    assert whole["original_tokens"] == whole["compressed_tokens"] and whole["ratio"] == 1.0
    assert cut["ratio"] == cut["original_tokens"] / cut["compressed_tokens"] > 1
    assert whole["call_ratio"] == cut["call_ratio"] not in (whole["ratio"], cut["ratio"])


def test_prompt_text_not_document_reprs_reaches_the_llm():
    from langchain_classic.chains.combine_documents import create_stuff_documents_chain
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.runnables import RunnableLambda

    prompt = ChatPromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}")
    node = as_langchain("first-k", rate=0.5, documents_key="context")
    stuffed = node | create_stuff_documents_chain(ParrotFakeChatModel(), prompt)
    answer = stuffed.invoke({"context": documents(), "question": QUESTION})
    helper = (
        as_langchain("first-k", rate=0.5)
        | RunnableLambda(lambda x: {**x, "context": format_documents(x["documents"])})
        | prompt
        | ParrotFakeChatModel()
        | StrOutputParser()
    )
    formatted = helper.invoke({"documents": documents(), "question": QUESTION})
    for text in (answer, formatted):
        assert "Document(" not in text and "kept_spans" not in text
        assert "first sign" in text
    assert answer == formatted  # the helper formats as create_stuff_documents_chain does


def test_input_keys_are_configurable():
    node = as_langchain("first-k", rate=0.5, documents_key="docs", question_key="input")
    out = node.invoke({"docs": documents(), "input": QUESTION, "other": 1})
    assert out["other"] == 1 and out["input"] == QUESTION
    assert sum(len(d.page_content) for d in out["docs"]) < sum(map(len, TEXTS))
    with pytest.raises(ValueError, match="'docs'"):
        node.invoke({"documents": documents(), "input": QUESTION})


def test_budgets_count_in_the_llms_tokenizer():
    words = ParrotFakeChatModel(custom_get_token_ids=lambda text: list(range(len(text.split()))))
    compressor = RagpressCompressor("first-k", target_tokens=10, llm=words)
    compressed = compressor.compress_documents(documents(), QUESTION)
    stats = compressed[0].metadata["ragpress"]
    assert stats["original_tokens"] == len(TEXTS[0].split())
    assert sum(len(d.page_content.split()) for d in compressed) <= 10
    with pytest.raises(TypeError, match="language model"):
        RagpressCompressor("first-k", llm=object())


def test_langchain_callbacks_receive_tokens_and_time():
    events = Events()
    node = as_langchain("first-k", rate=0.5)
    node.invoke({"documents": documents(), "question": QUESTION}, {"callbacks": [events]})
    node.batch([{"documents": documents(), "question": QUESTION}] * 2, {"callbacks": [events]})
    RagpressCompressor("first-k", rate=0.5).compress_documents(
        documents(), QUESTION, callbacks=[events]
    )
    assert [name for name, _ in events.seen] == [EVENT] * 4
    for _, data in events.seen:
        assert data["method"] == "first-k" and data["documents"] == 2
        assert data["saved_tokens"] == data["original_tokens"] - data["compressed_tokens"] > 0
        assert data["seconds"] >= 0


def test_langchain_async_reports_too():
    import asyncio

    events = Events()
    node = as_langchain("first-k", rate=0.5)
    asyncio.run(
        node.ainvoke({"documents": documents(), "question": QUESTION}, {"callbacks": [events]})
    )
    assert len(events.seen) == 1


def test_llamaindex_events_and_to_dict_round_trip():
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    seen: list[Any] = []

    class Collect(BaseEventHandler):
        def handle(self, event: Any, **kwargs: Any) -> None:
            if isinstance(event, RagpressCompressionEvent):
                seen.append(event)

    handler = Collect()
    get_dispatcher().add_event_handler(handler)
    try:
        first = RagpressPostprocessor("random", rate=0.5, seed=7)
        nodes = [
            NodeWithScore(node=TextNode(text=t, id_=str(i)), score=1.0) for i, t in enumerate(TEXTS)
        ]
        out = first.postprocess_nodes(nodes, QueryBundle(QUESTION))
        rebuilt = RagpressPostprocessor.from_dict(first.to_dict())
        again = rebuilt.postprocess_nodes(nodes, QueryBundle(QUESTION))
    finally:
        get_dispatcher().event_handlers.remove(handler)
    assert first.to_dict()["method"] == "random" and first.to_dict()["method_options"] == {
        "seed": 7
    }
    assert rebuilt.compressor.settings == first.compressor.settings
    assert [n.node.get_content() for n in again] == [n.node.get_content() for n in out]
    assert len(seen) == 2 and seen[0].method == "random" and seen[0].documents == 2
    assert seen[0].saved_tokens == seen[0].original_tokens - seen[0].compressed_tokens > 0


def test_a_postprocessor_built_from_an_instance_keeps_its_options_through_to_dict():
    instance = get_compressor("random", seed=7)
    rebuilt = RagpressPostprocessor.from_dict(RagpressPostprocessor(instance, rate=0.5).to_dict())
    assert rebuilt.compressor.settings == instance.settings  # seed 7 came back as 0 before
    assert rebuilt.method_options == {"seed": 7}


def test_a_postprocessor_over_a_pipeline_instance_keeps_its_stages_options_through_to_dict():
    from ragpress.compressors.pipeline import Pipeline

    instance = Pipeline([get_compressor("first-k"), get_compressor("random", seed=7)], headroom=1.5)
    processor = RagpressPostprocessor(instance, rate=0.25)
    rebuilt = RagpressPostprocessor.from_dict(processor.to_dict())
    assert rebuilt.method == "first-k+random"
    assert rebuilt.method_options["headroom"] == 1.5
    assert rebuilt.method_options["stage_options"]["random"] == {"seed": 7}
    assert rebuilt.compressor.settings == instance.settings  # seed 0 and headroom 2 before


def test_a_pipeline_given_as_a_stage_comes_back_with_its_defaults_through_to_dict():
    from ragpress.compressors.pipeline import Pipeline

    inner = Pipeline(["first-k", "random"], headroom=3)
    outer = Pipeline([inner, get_compressor("metatoken")], headroom=1.5)
    rebuilt = RagpressPostprocessor.from_dict(RagpressPostprocessor(outer).to_dict())
    assert rebuilt.method == "first-k+random+metatoken"  # from_dict raised before
    assert rebuilt.method_options["headroom"] == 1.5
    assert set(rebuilt.method_options["stage_options"]) == {"metatoken"}
