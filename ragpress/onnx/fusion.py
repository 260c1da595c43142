"""Fused attention for export: each attention call becomes one onnxruntime ``GroupQueryAttention``.

Why: ``torch.onnx.export(dynamo=True)`` decomposes SDPA into MatMul + Softmax, materialising an
S x S score matrix per head, while PyTorch runs a fused kernel; at 2k tokens that made the ONNX
graph slower than PyTorch, and at 8k it needs gigabytes per layer. onnxruntime's contrib op
``com.microsoft::GroupQueryAttention`` has a tiled (flash) CPU kernel, takes grouped key/value
heads as they are (no repeat), is causal or bidirectional (``causal`` attribute) and masks
right padding from per-row lengths; a CUDA kernel exists too (fp16).

How: during export only, the model's attention implementation is switched to ``FUSED``: its mask
function hands the 2-D padding mask through unchanged, and its attention function calls the
custom op ``ragpress::fused_attention`` (eager body: SDPA with the same mask), which the exporter
translates to the contrib op (``translation_table``).

Limits: rows must be right-padded (the runtime pads right); the flash path needs the op's
``present_key``/``present_value`` outputs, so the node declares them although nothing reads them.
"""

from __future__ import annotations

from typing import Any

import torch

FUSED = "ragpress_fused"
OP = "com.microsoft::GroupQueryAttention"


@torch.library.custom_op("ragpress::fused_attention", mutates_args=())
def fused_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    lengths: torch.Tensor,
    causal: bool,
    scale: float,
) -> torch.Tensor:
    """(B, N, S, H) query, (B, Nkv, S, H) key/value, (B,) lengths -> (B, S, N * H)."""
    batch, heads, length, size = query.shape
    groups = heads // key.shape[1]
    keys = key.repeat_interleave(groups, dim=1)
    values = value.repeat_interleave(groups, dim=1)
    positions = torch.arange(length, device=query.device)
    mask = (positions[None, :] < lengths[:, None])[:, None, None, :]
    if causal:
        mask = mask & (positions[None, :] <= positions[:, None])
    out = torch.nn.functional.scaled_dot_product_attention(
        query, keys, values, attn_mask=mask, scale=scale
    )
    return out.transpose(1, 2).reshape(batch, length, heads * size)


@fused_attention.register_fake
def _(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    lengths: torch.Tensor,
    causal: bool,
    scale: float,
) -> torch.Tensor:
    batch, heads, length, size = query.shape
    return query.new_empty(batch, length, heads * size)


def attention_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    **_: Any,
) -> tuple[torch.Tensor, None]:
    """A transformers attention function (``AttentionInterface``) for the fused custom op."""
    batch, heads, length, size = query.shape
    if attention_mask is None:
        lengths = torch.full((batch,), length, dtype=torch.int64, device=query.device)
    else:  # the 2-D padding mask: the mask function below does not expand it
        lengths = attention_mask.to(torch.int64).sum(-1).clamp(min=1)
    scale = float(scaling) if scaling is not None else size**-0.5
    causal = bool(getattr(module, "is_causal", True))
    out = torch.ops.ragpress.fused_attention(query, key, value, lengths, causal, scale)
    return out.view(batch, length, heads, size), None


def padding_mask(*, attention_mask: torch.Tensor | None = None, **_: Any) -> torch.Tensor | None:
    """A transformers mask function that keeps the 2-D padding mask (lengths are taken from it)."""
    return attention_mask


def register(name: str = FUSED, function: Any = attention_forward) -> str:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    AttentionInterface.register(name, function)
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, padding_mask)
    return name


def use_fused_attention(model: Any) -> None:
    """Switch ``model`` (in place) to the fused attention; only for export."""
    model.config._attn_implementation = register()


def translation_table() -> dict:
    """``custom_translation_table`` for ``torch.onnx.export(dynamo=True)``."""
    return {torch.ops.ragpress.fused_attention.default: _group_query_attention}


def _group_query_attention(query, key, value, lengths, causal: bool, scale: float):
    # The exporter reads this signature: unannotated parameters are graph inputs, annotated
    # ones attributes.
    from onnx import TensorProto
    from onnxscript import opset18 as op

    q, k, v = (_to_bsd(op, tensor) for tensor in (query, key, value))
    seqlens_k = op.Cast(op.Sub(lengths, op.Constant(value_int=1)), to=TensorProto.INT32)
    total = op.Cast(op.Squeeze(op.Shape(q, start=1, end=2)), to=TensorProto.INT32)
    output, _present_key, _present_value = _contrib_op()(
        q,
        k,
        v,
        None,
        None,
        seqlens_k,
        total,
        num_heads=_heads(query),
        kv_num_heads=_heads(key),
        scale=scale,
        causal=int(causal),
    )
    return output


def _to_bsd(op: Any, tensor: Any) -> Any:
    """(B, N, S, H) -> (B, S, N * H)."""
    return op.Reshape(op.Transpose(tensor, perm=[0, 2, 1, 3]), op.Constant(value_ints=[0, 0, -1]))


def _heads(tensor: Any) -> int:
    heads = tensor.shape[1]
    if not isinstance(heads, int):
        raise ValueError(f"the head axis of {tensor.name} must be static for {OP}, got {heads}")
    return heads


def _contrib_op() -> Any:
    """The contrib op for onnxscript, with the part of its schema we use.

    The onnx package has no schemas for onnxruntime's contrib ops and the exporter needs one to
    map arguments; registering it globally would change what ``onnx.checker`` accepts elsewhere.
    """
    from onnx.defs import OpSchema
    from onnxscript.values import Op, Opset

    single, optional = (
        OpSchema.FormalParameterOption.Single,
        OpSchema.FormalParameterOption.Optional,
    )
    inputs = [
        OpSchema.FormalParameter(name, kind, param_option=option)
        for name, kind, option in (
            ("query", "T", single),
            ("key", "T", single),
            ("value", "T", single),
            ("past_key", "T", optional),
            ("past_value", "T", optional),
            ("seqlens_k", "M", single),
            ("total_sequence_length", "M", single),
        )
    ]
    schema = OpSchema(
        "GroupQueryAttention",
        "com.microsoft",
        1,
        inputs=inputs,
        outputs=[
            OpSchema.FormalParameter(n, "T") for n in ("output", "present_key", "present_value")
        ],
        type_constraints=[
            ("T", ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"], ""),
            ("M", ["tensor(int32)"], ""),
        ],
        attributes=[
            OpSchema.Attribute("num_heads", OpSchema.AttrType.INT, ""),
            OpSchema.Attribute("kv_num_heads", OpSchema.AttrType.INT, ""),
            OpSchema.Attribute("scale", OpSchema.AttrType.FLOAT, ""),
            OpSchema.Attribute("causal", OpSchema.AttrType.INT, ""),
        ],
    )
    return Op(Opset("com.microsoft", 1), "GroupQueryAttention", schema)
