"""Which method runs when the caller names none: one place, read by the API, CLI and adapters.

With a question the query-aware default prunes for it; without one nothing is dropped (the
lossless ``metatoken``), since a lossy method cannot know what matters.
"""

from __future__ import annotations

from ragpress.types import CompressionRequest

#: The method when no question is given: lossless, nothing lost.
DEFAULT_METHOD = "metatoken"
#: The method when a question is given: the relevance pruner, one MiniLM cross-encoder pass.
#: On the same 20 test items (gold + 4 other-article passages) it keeps the answer in 100 / 100 /
#: 80% at 2x / 4x / 8x where entropy keeps 95 / 70 / 50% (bench/results/relevance.md, quality.md),
#: at about a fifth of entropy's time.
QUERY_METHOD = "relevance"


def default_method(query: str | None) -> str:
    """The method to use for ``query`` when the caller names none."""
    return QUERY_METHOD if isinstance(query, str) and query.strip() else DEFAULT_METHOD


def method_for(
    method: str | None,
    query: str | None,
    rate: float | None = None,
    target_tokens: int | None = None,
    *,
    query_argument: str = "query",
    method_argument: str = "method",
) -> str:
    """``method``, or (None or "") the default for ``query``. A budget with neither is refused:
    the default without a question is lossless and would meet no budget, silently; the
    arguments' names (the CLI's options) go into the message."""
    if method:
        return method
    CompressionRequest.create("", rate=rate, target_tokens=target_tokens)  # a bad value first
    name = default_method(query)
    if (rate is not None or target_tokens is not None) and name == DEFAULT_METHOD:
        raise ValueError(
            f"a budget needs a lossy method, and without a question the default is the lossless "
            f"{DEFAULT_METHOD!r}: give the question ({query_argument}; the default is then "
            f"{QUERY_METHOD!r}), or name a method that needs none ({method_argument} "
            "token-classifier, entropy, first-k, ...)"
        )
    return name
