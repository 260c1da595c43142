"""A model's own tokenizer on the ``tokenizers`` library alone: no transformers at run time.

Export folders hold the tokenizer as transformers saved it (``tokenizer/tokenizer.json`` and
``tokenizer_config.json``); this reads those two files. The compressors use the small part of
the transformers tokenizer API below (batch call with offsets and word ids, ``encode``, special
ids), so the same code runs on a transformers tokenizer wrapped by
:meth:`ModelTokenizer.from_transformers` (the torch backend, exports).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SPECIAL = ("cls", "sep", "bos", "eos", "pad", "unk")
#: transformers writes this for "no limit" (int(1e30)); anything this large means none.
NO_LIMIT = 1_000_000


class Encoded(dict):
    """A batch encoding: ``["input_ids"]``, ``["offset_mapping"]`` and ``word_ids(i)``; for one
    text (``single``) the lists are that text's own, as transformers returns them."""

    def __init__(self, encodings: list[Any], offsets: bool, single: bool = False) -> None:
        pick = (lambda values: values[0]) if single else (lambda values: values)
        super().__init__(input_ids=pick([encoding.ids for encoding in encodings]))
        if offsets:
            self["offset_mapping"] = pick([encoding.offsets for encoding in encodings])
        self._encodings = encodings

    def word_ids(self, index: int = 0) -> list[int | None]:
        return self._encodings[index].word_ids


class ModelTokenizer:
    """A ``tokenizers.Tokenizer`` with the special token ids of its model."""

    is_fast = True
    cls_token_id: int | None
    sep_token_id: int | None
    bos_token_id: int | None
    eos_token_id: int | None
    pad_token_id: int | None
    unk_token_id: int | None

    def __init__(self, tokenizer: Any, special: dict[str, str | None], max_length: int) -> None:
        # Saved tokenizer.json files may carry a fixed truncation/padding (MiniLM's: 128 tokens);
        # the runtime pads and cuts itself.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.model_max_length = max_length
        for kind in SPECIAL:
            token = special.get(kind)
            found = None if token is None else tokenizer.token_to_id(token)
            setattr(self, f"{kind}_token_id", found)

    @classmethod
    def from_folder(cls, folder: str | Path) -> ModelTokenizer:
        """Read ``tokenizer.json`` and ``tokenizer_config.json`` (as transformers saves them)."""
        from tokenizers import Tokenizer

        folder = Path(folder)
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} has no tokenizer.json (a fast tokenizer is needed): run "
                "`ragpress models prepare --force` for a prepared model, or save the tokenizer "
                "with transformers' save_pretrained"
            )
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text("utf-8")) if config_path.is_file() else {}
        for extra in ("special_tokens_map.json",):
            if (folder / extra).is_file():
                config = {**json.loads((folder / extra).read_text("utf-8")), **config}
        special = {kind: _token_text(config.get(f"{kind}_token")) for kind in SPECIAL}
        limit = config.get("model_max_length")
        max_length = int(limit) if isinstance(limit, (int, float)) and limit < NO_LIMIT else 0
        return cls(Tokenizer.from_file(str(path)), special, max_length)

    @classmethod
    def from_transformers(cls, tokenizer: Any) -> ModelTokenizer:
        """Wrap a transformers fast tokenizer (its Rust core and special tokens)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise TypeError(
                f"{type(tokenizer).__name__} is not a fast tokenizer; ragpress needs one (a "
                "folder with tokenizer.json)"
            )
        from tokenizers import Tokenizer

        special = {kind: getattr(tokenizer, f"{kind}_token", None) for kind in SPECIAL}
        limit = getattr(tokenizer, "model_max_length", 0) or 0
        copy = Tokenizer.from_str(backend.to_str())  # no_truncation() must not change theirs
        return cls(copy, special, int(limit) if limit < NO_LIMIT else 0)

    @property
    def backend_tokenizer(self) -> Any:
        return self._tokenizer

    def __call__(
        self,
        texts: str | Sequence[str],
        *,
        add_special_tokens: bool = True,
        return_offsets_mapping: bool = False,
    ) -> Encoded:
        """Like a transformers tokenizer call (same defaults): one text or a list of them."""
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        encodings = self._tokenizer.encode_batch(batch, add_special_tokens=add_special_tokens)
        return Encoded(encodings, return_offsets_mapping, single)

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)


def _token_text(value: Any) -> str | None:
    """A special token as saved: a string, or a dict with its ``content`` (older files)."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None
