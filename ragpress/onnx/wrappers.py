"""The torch modules each ONNX role exports (and the torch backend runs): a causal LM or
encoder wrapped to return only what its compressor reads.

``nll``: per-token negative log-likelihood (B, S); ``token-logits``: token-classification
logits (B, S, C); ``attention``: the final position's attention to every position, per layer
and head (B, L, H, S); ``attention-tail``: the same for each of the last :data:`TAIL_ROWS`
positions (B, L, H, K, S). ``fused=True`` swaps in the fused attention of ``ragpress.onnx.fusion``
(the exported graphs); the parity reference is the unchanged model.
"""

from __future__ import annotations

import itertools
from typing import Any

#: Causal LMs whose logits are the output embedding of the decoder's last hidden state, with no
#: scaling or soft-capping after it (the NLL graph applies the head itself).
PLAIN_HEAD = frozenset({"llama", "qwen2", "mistral", "qwen3", "phi3"})


def nll_wrapper(model: Any, fused: bool = False) -> Any:
    import torch

    if fused:
        use_fused_attention(model)

    class TokenNLL(torch.nn.Module):
        """Per-token NLL; position 0 (no context) is 0. Padding positions are 0 too."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            logits = self.logits(input_ids, attention_mask).float()
            target = input_ids[:, 1:].unsqueeze(-1)
            # log-sum-exp minus the target's logit: no (B, S, vocab) log-softmax is written out
            nll = torch.logsumexp(logits, dim=-1) - torch.gather(logits, -1, target).squeeze(-1)
            # where, not a product: padded rows of a fused attention may hold any value
            nll = torch.where(attention_mask[:, 1:].bool(), nll, torch.zeros_like(nll))
            return torch.nn.functional.pad(nll, (1, 0))

        def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            """Logits predicting tokens 1..S-1. Where the head is a plain projection, the last
            position is cut from the hidden states before it: cutting the (B, S, vocab) logits
            instead is a copy of all of them in the graph (4-8% of a forward on CPU)."""
            if getattr(model.config, "model_type", None) in PLAIN_HEAD:
                hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask)
                return model.get_output_embeddings()(hidden.last_hidden_state[:, :-1, :])
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
            return logits[:, :-1, :]

    return TokenNLL()


def use_fused_attention(model: Any) -> None:
    from ragpress.onnx.fusion import use_fused_attention

    use_fused_attention(model)


def attention_wrapper(model: Any, fused: bool = False) -> Any:
    """Attention of the final position to every position, per layer and head: (B, L, H, S).

    The forward keeps SDPA (or, ``fused``, the attention of ``ragpress.onnx.fusion``); beside
    it each layer computes softmax(q_last . K^T * scale) for the last position only (a few KB),
    never a full S x S map. The vocabulary projection is skipped (only the base model runs).
    Rows are exact when the last position is a real token, i.e. with no right padding (the
    runtime runs this role one sequence at a time).
    """
    return _attention_rows(model, fused, tail=1)


def attention_tail_wrapper(model: Any, fused: bool = False) -> Any:
    """Attention of each of the last :data:`TAIL_ROWS` positions (the question tail of a probe
    prompt) to every position, per layer and head: (B, L, H, K, S), K = min(TAIL_ROWS, S).
    As :func:`attention_wrapper` otherwise; the last row is that role's row."""
    return _attention_rows(model, fused, tail=TAIL_ROWS)


def _attention_rows(model: Any, fused: bool, tail: int) -> Any:
    """``tail`` 1: (B, L, H, S); more: (B, L, H, K, S) for the last K = ``tail`` positions."""
    import torch
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    rows: list[torch.Tensor] = []

    def probe_attention(module, query, key, value, attention_mask, **kwargs):
        keys = repeat_kv(key, module.num_key_value_groups)
        scores = torch.matmul(query[:, :, -tail:, :], keys.transpose(-1, -2)) * module.scaling
        if tail > 1:
            # position p attends to 0..p only: mask the later positions each tail row would see
            positions = torch.arange(keys.shape[-2], device=scores.device)
            row_positions = positions[-scores.shape[-2] :].unsqueeze(-1)
            scores = scores.masked_fill(positions > row_positions, float("-inf"))
        probabilities = torch.softmax(scores.float(), dim=-1)
        rows.append(probabilities[:, :, 0, :] if tail == 1 else probabilities)
        return forward(module, query, key, value, attention_mask, **kwargs)

    # Attention functions are registered globally by name: each wrapper takes its own name, so
    # a later wrapper (an export's parity reference, a second model) never captures its rows.
    name = f"{PROBE_ATTENTION}_{next(_WRAPPER_IDS)}"
    if fused:
        from ragpress.onnx import fusion

        forward = fusion.attention_forward
        name = fusion.register(f"{name}_fused", probe_attention)
    else:
        forward = sdpa_attention_forward  # type: ignore[assignment]
        AttentionInterface.register(name, probe_attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, sdpa_mask)
    model.config._attn_implementation = name
    base = model.model if hasattr(model, "model") else model

    class AttentionRows(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = base

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            rows.clear()
            self.base(input_ids=input_ids, attention_mask=attention_mask)
            return torch.stack(rows, dim=1)

    return AttentionRows()


def logits_wrapper(model: Any, fused: bool = False) -> Any:
    import torch

    if fused:
        use_fused_attention(model)

    class TokenLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    return TokenLogits()


def hidden_wrapper(model: Any, fused: bool = False) -> Any:
    """An encoder's last hidden states (B, S, D), for sentence embeddings."""
    import torch

    if fused:
        use_fused_attention(model)

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            output = self.model(input_ids=input_ids, attention_mask=attention_mask)
            return output.last_hidden_state

    return HiddenStates()


def relevance_wrapper(model: Any, fused: bool = False) -> Any:
    """A 2-channel token classifier read as a Provence-style cross-encoder, (B, S, 2): channel 0
    is each token's keep logit; channel 1 is the passage's relevance logit at ``[CLS]`` and each
    token's answer logit after it. The graph is a token classifier's."""
    return logits_wrapper(model, fused)


PROBE_ATTENTION = "ragpress_probe"
#: Tail positions the ``attention-tail`` role reads: ``"\nAnswer:"`` and the question's last
#: words in a probe prompt (Sentinel reads the query's attention, not the final token's alone).
TAIL_ROWS = 8
_WRAPPER_IDS = itertools.count()
WRAPPERS = {
    "nll": nll_wrapper,
    "token-logits": logits_wrapper,
    "attention": attention_wrapper,
    "attention-tail": attention_tail_wrapper,
    "hidden": hidden_wrapper,
    "relevance": relevance_wrapper,
}
