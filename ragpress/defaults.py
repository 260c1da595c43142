"""Which method runs when the caller names none: one place, read by the API, CLI and adapters.

With a question the query-aware default prunes for it; without one nothing is dropped (the
lossless ``metatoken``), since a lossy method cannot know what matters.
"""

from __future__ import annotations

#: The method when no question is given: lossless, nothing lost.
DEFAULT_METHOD = "metatoken"
#: The method when a question is given: today's strongest query-aware compressor.
QUERY_METHOD = "entropy"


def default_method(query: str | None) -> str:
    """The method to use for ``query`` when the caller names none."""
    return QUERY_METHOD if isinstance(query, str) and query.strip() else DEFAULT_METHOD
