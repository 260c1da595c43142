"""The target tokenizer: the tokenizer of the LLM that will read the compressed prompt.

Budgets and token counts are measured in it. The default, ``"smollm2"``, is the byte-level BPE
tokenizer of SmolLM2 (49,152 tokens, Apache-2.0) shipped inside ragpress, so counting works
offline. Any Hugging Face tokenizer (object, hub id or folder), a ``tokenizer.json`` path, or a
callable ``text -> list[int]`` can be given instead.
"""

from __future__ import annotations

import gzip
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

DEFAULT_TOKENIZER = "smollm2"
_BUNDLED = {"smollm2": "smollm2-tokenizer.json.gz"}
_PIECES = re.compile(r"\s*\S+|\s+")


@runtime_checkable
class TargetTokenizer(Protocol):
    name: str

    def encode(self, text: str) -> list[int]: ...

    def count(self, text: str) -> int: ...

    def pieces(self, text: str) -> list[str]:
        """Split ``text`` into consecutive pieces, one per token where offsets allow."""
        ...


class FastTokenizer:
    """A ``tokenizers.Tokenizer`` (the Rust core of every HF fast tokenizer)."""

    def __init__(self, tokenizer: Any, name: str) -> None:
        self._tokenizer = tokenizer
        self.name = name

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [encoding.ids for encoding in encodings]

    def count(self, text: str) -> int:
        return len(self.encode(text)) if text else 0

    def decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=False)

    def pieces(self, text: str) -> list[str]:
        offsets = self._tokenizer.encode(text, add_special_tokens=False).offsets
        return pieces_from_offsets(text, [start for start, _ in offsets])


class CallableTokenizer:
    """Wraps ``text -> list[int]``; pieces fall back to whitespace-led words."""

    def __init__(self, function: Callable[[str], Sequence[int]], name: str) -> None:
        self._function = function
        self.name = name

    def encode(self, text: str) -> list[int]:
        given = self._function(text)
        if isinstance(given, str) or not isinstance(given, Iterable):
            raise TypeError(
                f"{self.name} must give a list of tokens (ids or strings), got "
                f"{type(given).__name__}; pass a callable text -> list[int] as target_tokenizer"
            )
        ids = list(given)
        if not ids and any(character.isalnum() for character in text):
            # A count of 0 would let every budget pass: nothing compressed, and no sign of it.
            # (A unit of zero-width or control characters alone may rightly count 0.)
            raise ValueError(
                f"{self.name} gave no token ids for {len(text)} characters of text; check that "
                "it works on this machine (LangChain's default get_token_ids loads GPT-2's "
                "tokenizer from the Hugging Face hub and gives [] when offline: set "
                "custom_get_token_ids on the model, or pass target_tokenizer=...)"
            )
        return ids

    def count(self, text: str) -> int:
        return len(self.encode(text)) if text else 0

    def pieces(self, text: str) -> list[str]:
        return _PIECES.findall(text)


def pieces_from_offsets(text: str, starts: Sequence[int]) -> list[str]:
    """Cut ``text`` at token start offsets; the pieces always concatenate back to ``text``.

    Byte-level BPE can give several tokens the same start (one character split over bytes);
    such tokens share one piece, and a gap (a space the tokenizer dropped) joins the next piece.
    """
    cuts = sorted({start for start in starts if 0 < start < len(text)})
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def get_target_tokenizer(spec: Any = None) -> TargetTokenizer:
    """Turn ``spec`` into a target tokenizer.

    ``None`` or ``"smollm2"``: the bundled default. A ``TargetTokenizer``: as is. A HF tokenizer
    object (it has ``backend_tokenizer`` or ``encode``) or a ``tokenizers.Tokenizer``: wrapped.
    A path to a ``tokenizer.json`` or a folder holding one: loaded with ``tokenizers``. Any other
    string: a hub id or folder loaded with ``transformers.AutoTokenizer`` (needs the ``export``
    extra). A callable: used as ``text -> list[int]``.
    """
    if spec is None:
        spec = DEFAULT_TOKENIZER
    if isinstance(spec, str):
        return _named_tokenizer(spec)
    if isinstance(spec, TargetTokenizer):
        return spec
    if _is_rust_tokenizer(spec):  # its encode gives an Encoding, not ids
        return FastTokenizer(spec, "tokenizers.Tokenizer")
    backend = getattr(spec, "backend_tokenizer", None)
    if backend is not None:
        return FastTokenizer(backend, getattr(spec, "name_or_path", type(spec).__name__))
    if hasattr(spec, "encode") and callable(spec.encode):
        # Probe the signature once, not on every encode (counting is on the hot path).
        if _accepts_special_tokens_flag(spec):
            return CallableTokenizer(
                lambda text: spec.encode(text, add_special_tokens=False), type(spec).__name__
            )
        return CallableTokenizer(spec.encode, type(spec).__name__)
    if callable(spec):
        return CallableTokenizer(spec, getattr(spec, "__name__", "callable"))
    raise TypeError(
        "target_tokenizer must be None, a name, a path, a Hugging Face tokenizer or a callable "
        f"text -> list[int]; got {type(spec).__name__}"
    )


@lru_cache(maxsize=8)
def _named_tokenizer(name: str) -> TargetTokenizer:
    from tokenizers import Tokenizer

    if name in _BUNDLED:
        data = resources.files("ragpress.data").joinpath(_BUNDLED[name]).read_bytes()
        return FastTokenizer(Tokenizer.from_str(gzip.decompress(data).decode("utf-8")), name)
    path = Path(name)
    if path.is_dir() and (path / "tokenizer.json").is_file():
        path = path / "tokenizer.json"
    if path.is_file() and path.suffix == ".json":
        return FastTokenizer(Tokenizer.from_file(str(path)), name)
    try:
        from transformers import AutoTokenizer
    except ImportError as error:
        raise ImportError(
            f"loading the tokenizer {name!r} needs transformers: pip install 'ragpress[export]' "
            f"(bundled tokenizers: {', '.join(_BUNDLED)}; or give a path to a tokenizer.json)"
        ) from error
    from ragpress.onnx.sources import pretrained

    return get_target_tokenizer(pretrained(AutoTokenizer, name))


def _is_rust_tokenizer(spec: Any) -> bool:
    from tokenizers import Tokenizer

    return isinstance(spec, Tokenizer)


def _accepts_special_tokens_flag(tokenizer: Any) -> bool:
    try:
        tokenizer.encode("", add_special_tokens=False)
    except TypeError:
        return False
    return True
