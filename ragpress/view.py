"""What a compression kept and dropped, for people: a coloured terminal view and an HTML page.

Both read the result's ``kept_spans`` (character offsets into the input documents), so they show
exactly the input text: kept spans plain, dropped text struck through, with each document's own
token counts in the target tokenizer.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ragpress.tokenization import TargetTokenizer
from ragpress.types import CompressionResult


@dataclass(frozen=True)
class DocumentView:
    """One input document cut into ``(text, kept)`` segments, with its own figures."""

    index: int
    segments: list[tuple[str, bool]]
    original_tokens: int
    compressed_tokens: int

    @property
    def ratio(self) -> float:
        """As ``CompressionResult.ratio``: infinite where the whole document was dropped."""
        if self.compressed_tokens == 0:
            return math.inf if self.original_tokens else 1.0
        return self.original_tokens / self.compressed_tokens


def ratio_text(ratio: float) -> str:
    """``4.00x``, or ``dropped`` where nothing was kept (an infinite ratio)."""
    return "dropped" if math.isinf(ratio) else f"{ratio:.2f}x"


def document_views(
    documents: Sequence[str], result: CompressionResult, tokenizer: TargetTokenizer
) -> list[DocumentView]:
    """Per document: its kept and dropped segments and its own token counts."""
    outputs = result.document_texts(len(documents))
    views = []
    for index, (text, output) in enumerate(zip(documents, outputs, strict=True)):
        spans = sorted((s.start, s.end) for s in result.kept_spans if s.doc == index)
        views.append(
            DocumentView(
                index,
                _segments(text, spans),
                tokenizer.count(text),
                tokenizer.count(output),
            )
        )
    return views


def _segments(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    segments: list[tuple[str, bool]] = []
    position = 0
    for start, end in spans:
        start = max(start, position)
        if start > position:
            segments.append((text[position:start], False))
        if end > start:
            segments.append((text[start:end], True))
        position = max(position, end)
    if position < len(text):
        segments.append((text[position:], False))
    return segments


def _headline(result: CompressionResult, query: str | None) -> str:
    asked = f' for "{query}"' if query else ""
    fewer = "all dropped" if math.isinf(result.ratio) else f"{ratio_text(result.ratio)} fewer"
    return (
        f"{result.method}{asked}: {result.original_tokens} -> {result.compressed_tokens} tokens "
        f"({fewer}, {result.saved_tokens} saved) in {result.seconds:.2f} s"
    )


def terminal_view(
    documents: Sequence[str],
    result: CompressionResult,
    tokenizer: TargetTokenizer,
    query: str | None = None,
    *,
    colour: bool = True,
) -> Any:
    """A rich renderable: each document with kept text bright, dropped text dim red and
    struck through, under a line of its figures; the totals last. Without ``colour`` (output
    to a file or a pipe, where styles are dropped) dropped text is wrapped in ``[-...-]``."""
    from rich.console import Group
    from rich.rule import Rule
    from rich.text import Text

    parts: list[Any] = []
    for view in document_views(documents, result, tokenizer):
        figures = f"document {view.index + 1}: {view.original_tokens} -> {view.compressed_tokens}"
        parts.append(Rule(Text(f"{figures} tokens", style="bold cyan"), align="left", style="cyan"))
        body = Text()
        for segment, kept in view.segments:
            if kept or colour:
                body.append(segment, style="bold green" if kept else "dim red strike")
            else:
                body.append(f"[-{segment}-]")
        parts.append(body)
    parts += [Rule(style="cyan"), Text(_headline(result, query), style="bold")]
    legend = "bold green; dropped: dim red, struck through" if colour else "as is; dropped: [-...-]"
    parts.append(Text(f"kept: {legend}", style="dim"))
    return Group(*parts)


_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
h1 { font-size: 1.2rem; } h2 { font-size: 1rem; color: #0a6; margin-top: 1.5rem; }
.doc { white-space: pre-wrap; border-left: 3px solid #0a6; padding-left: .8rem; }
.kept { color: #111; background: #e6f6ec; }
del { color: #b33; opacity: .6; }
table { border-collapse: collapse; } td, th { padding: .2rem .8rem; border-bottom: 1px solid #ddd; }
"""


def html_view(
    documents: Sequence[str],
    result: CompressionResult,
    tokenizer: TargetTokenizer,
    query: str | None = None,
) -> str:
    """A self-contained HTML page (no script, no external file): per-document figures, then
    each document with kept text highlighted and dropped text struck through."""
    views = document_views(documents, result, tokenizer)
    rows = "".join(
        f"<tr><td>{v.index + 1}</td><td>{v.original_tokens}</td><td>{v.compressed_tokens}</td>"
        f"<td>{ratio_text(v.ratio)}</td></tr>"
        for v in views
    )
    body = []
    for view in views:
        body.append(
            f"<h2>Document {view.index + 1}: {view.original_tokens} &rarr; "
            f"{view.compressed_tokens} tokens</h2><div class='doc'>"
        )
        for segment, kept in view.segments:
            text = html.escape(segment)
            body.append(f"<span class='kept'>{text}</span>" if kept else f"<del>{text}</del>")
        body.append("</div>")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>ragpress: {html.escape(result.method)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(_headline(result, query))}</h1>"
        "<table><tr><th>document</th><th>tokens in</th><th>tokens out</th><th>ratio</th></tr>"
        f"{rows}</table>{''.join(body)}</body></html>\n"
    )
