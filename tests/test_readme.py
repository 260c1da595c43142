"""README.md's Python blocks, run verbatim, in order, in one namespace, on the real models.

The README's integration blocks use what a reader brings: ``vectorstore`` and ``llm`` (LangChain),
and LlamaIndex's ``Settings`` (embedder, LLM, tokenizer). They are set up here with the real
package-shipped MiniLM as the embedder; only the chat model / LLM is a fake (langchain-core's
``ParrotFakeChatModel``, which answers with its prompt; llama-index-core's ``MockLLM``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


#: Blocks that need a running HTTP service (README "Serving"): tests/test_serve.py runs that.
NEEDS_SERVER = ("RemoteCompressor(",)


def python_blocks() -> list[str]:
    return BLOCK.findall(README.read_text("utf-8"))


def runnable_blocks() -> list[str]:
    return [b for b in python_blocks() if not any(marker in b for marker in NEEDS_SERVER)]


def test_the_readme_has_python_blocks_to_run():
    blocks = python_blocks()
    assert len(blocks) >= 6
    assert any("as_langchain" in block for block in blocks)
    assert any("RagpressPostprocessor" in block for block in blocks)


def _reader_objects() -> dict[str, Any]:
    """What README readers bring: a vector store over the sample, an LLM, LlamaIndex Settings."""
    from importlib import resources

    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models.fake_chat_models import ParrotFakeChatModel
    from langchain_core.vectorstores import InMemoryVectorStore
    from llama_index.core import Settings
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.core.llms import MockLLM

    import ragpress

    embedder: Any = ragpress.get_compressor("embedding-similarity")  # MiniLM on ONNX
    tokenizer = ragpress.get_target_tokenizer()

    class MiniLM(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return embedder.embed([text])[0].tolist()

    class MiniLMIndexEmbedding(BaseEmbedding):
        def _get_query_embedding(self, query: str) -> list[float]:
            return embedder.embed([query])[0].tolist()

        def _get_text_embedding(self, text: str) -> list[float]:
            return embedder.embed([text])[0].tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    sample = resources.files("ragpress.data").joinpath("sample.txt").read_text("utf-8")
    chunks = [chunk for chunk in sample.split("\n\n") if chunk.strip()]
    vectorstore = InMemoryVectorStore(MiniLM())
    vectorstore.add_documents([Document(page_content=chunk) for chunk in chunks])
    Settings.embed_model = MiniLMIndexEmbedding()
    Settings.llm = MockLLM()
    Settings.tokenizer = tokenizer.encode
    return {
        "vectorstore": vectorstore,
        "llm": ParrotFakeChatModel(custom_get_token_ids=tokenizer.encode),
    }


@pytest.mark.real_model
def test_readme_python_blocks_run_verbatim():
    namespace: dict[str, Any] = {"__name__": "readme"}
    namespace.update(_reader_objects())
    for number, block in enumerate(runnable_blocks(), 1):
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as error:  # name the block that failed
            raise AssertionError(f"README python block {number} failed: {error!r}") from error
    # What the blocks built holds up: real compression, compressed text reaching the prompt.
    assert namespace["result"].compressed_tokens <= namespace["result"].original_tokens
    answer = str(namespace["answer"])
    assert "Document(" not in answer and "kept_spans" not in answer and "Question:" in answer
    assert all("ragpress" in doc.metadata for doc in namespace["docs"])
    assert namespace["response"].source_nodes
