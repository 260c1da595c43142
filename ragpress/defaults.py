"""Which method runs when the caller names none: one place, read by the API, CLI and adapters.

With a question the query-aware default prunes for it; without one nothing is dropped (the
lossless ``metatoken``), since a lossy method cannot know what matters.
"""

from __future__ import annotations

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
