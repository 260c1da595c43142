"""Benchmark the lossless meta-token compressor (``ragpress.compressors.metatoken``).

Run: ``python -m bench.metatoken``. For each input set: original tokens, compressed tokens and
saving of the TEXT rendering (``compress``) and of the IDS rendering (``compress_ids``), next to
the paper's 18-27% ("Lossless Token Sequence Compression via Meta-Tokens", 2025), and the number
of items whose exact round-trip failed (must be 0). Then the run finder's encoding speed on one
core, on pre-tokenized ids (tokenization timed separately), against a 1M tokens/s target.
"""

# ruff: noqa: E402  (the thread limits must be set before numpy is imported)
from __future__ import annotations

import os

for _variable in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "RAYON_NUM_THREADS",
):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import argparse as _argparse_module
import datetime as dt
import json
import logging
import random
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.data import wikipedia_summaries
from bench.harness import markdown_table, measure, pin_one_core, tokens_per_second, write_results
from bench.reporting import Paragraph, Result, Results, joined, missing_note, num, pct

PAPER_SAVING = "18-27"
TARGET_TOKENS_PER_S = 1_000_000
CORPUS_TOKEN_CAP = 2_000_000  # the concatenated Wikipedia corpus stops near this many tokens
LOG_LINES = 14_000  # ~1M SmolLM2 tokens
JSON_RECORDS = 9_500  # ~1M SmolLM2 tokens

#: The results this benchmark writes (bench/results/NAME.json) and the command that writes
#: each, as the Makefile runs it (bench.report names it when a result is missing).
COMMANDS = {
    "metatoken": "python -m bench.metatoken",
}


@dataclass
class InputSet:
    """A named list of texts; ``speed`` marks the sets whose encoding speed is timed."""

    name: str
    texts: list[str]
    speed: bool = False


# ---- inputs -------------------------------------------------------------------------------


def wikipedia_articles(texts: Sequence[str], count: int) -> list[str]:
    """``count`` articles spread evenly over the corpus (deterministic)."""
    step = max(1, len(texts) // count)
    return list(texts[::step][:count])


def wikipedia_corpus(texts: Sequence[str], count_tokens: Callable[[str], int]) -> str:
    """All articles joined with blank lines, cut at the last article under the token cap."""
    corpus = "\n\n".join(texts)
    if count_tokens(corpus) <= CORPUS_TOKEN_CAP:
        return corpus
    kept = len(texts)
    while kept > 1 and count_tokens("\n\n".join(texts[:kept])) > CORPUS_TOKEN_CAP:
        kept = kept * 9 // 10
    return "\n\n".join(texts[:kept])


_LOG_TEMPLATES = (
    "INFO  [http-{thread}] api.server - {method} /api/v1/users/{user}/orders -> {status} "
    "in {ms} ms (request_id={rid})",
    "DEBUG [db-pool-{thread}] db.pool - acquired connection {conn} from pool 'primary' "
    "(active={active}, idle={idle})",
    "WARN  [http-{thread}] cache.redis - cache miss for key user:{user}:profile, falling back "
    "to database",
    "ERROR [worker-{thread}] payments.worker - failed to charge order {order}: upstream timeout "
    "after 3000 ms (attempt {attempt}/5)",
    "INFO  [auth-{thread}] auth.service - user {user} logged in from 10.{a}.{b}.{c}",
)


def application_logs(lines: int = LOG_LINES, seed: int = 0) -> str:
    """Log lines: increasing timestamps, a few templates, varying ids (seeded)."""
    rng = random.Random(seed)
    millis = 1_736_000_000_000  # 2025-01-04
    out = []
    for _ in range(lines):
        millis += rng.randint(1, 900)
        moment = dt.datetime.fromtimestamp(millis / 1000, tz=dt.timezone.utc)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"
        template = rng.choices(_LOG_TEMPLATES, weights=(50, 25, 12, 5, 8))[0]
        out.append(stamp + " " + template.format(**_log_fields(rng)))
    return "\n".join(out) + "\n"


def _log_fields(rng: random.Random) -> dict[str, object]:
    return {
        "thread": rng.randint(1, 16),
        "method": rng.choice(("GET", "GET", "GET", "POST", "PUT")),
        "user": rng.randint(1000, 99999),
        "status": rng.choice((200, 200, 200, 201, 404, 500)),
        "ms": rng.randint(1, 2500),
        "rid": f"{rng.getrandbits(64):016x}",
        "conn": rng.randint(1, 64),
        "active": rng.randint(0, 32),
        "idle": rng.randint(0, 32),
        "order": rng.randint(10**7, 10**8),
        "attempt": rng.randint(1, 5),
        "a": rng.randint(0, 255),
        "b": rng.randint(0, 255),
        "c": rng.randint(1, 254),
    }


def json_records(count: int = JSON_RECORDS, seed: int = 0) -> str:
    """``json.dumps`` of a list of records that share their keys (seeded)."""
    rng = random.Random(seed)
    first = ("Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Frances")
    last = ("Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton")
    cities = (("Berlin", "DE"), ("Lyon", "FR"), ("Austin", "US"), ("Osaka", "JP"), ("Pune", "IN"))
    records = []
    for index in range(count):
        name = f"{rng.choice(first)} {rng.choice(last)}"
        city, country = rng.choice(cities)
        records.append(
            {
                "id": 100_000 + index,
                "name": name,
                "email": f"{name.lower().replace(' ', '.')}{rng.randint(1, 99)}@example.com",
                "status": rng.choice(("active", "active", "inactive", "pending")),
                "created_at": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T00:00:00Z",
                "score": round(rng.uniform(0, 100), 2),
                "tags": rng.sample(("admin", "beta", "trial", "vip", "churn-risk", "eu"), 2),
                "address": {"city": city, "country": country},
            }
        )
    return json.dumps(records)


def python_sources() -> list[str]:
    """The source files of the stdlib's ``json``, ``argparse`` and ``logging`` (sorted paths)."""
    paths = [Path(str(_argparse_module.__file__))]
    for package in (json, logging):
        paths += sorted(Path(str(package.__file__)).parent.glob("*.py"))
    return [path.read_text(encoding="utf-8") for path in paths]


# ---- measurements -------------------------------------------------------------------------


def compression_row(compressor, input_set: InputSet) -> dict[str, object]:
    """Token counts of both renderings over the set, and round-trip failures (either rendering)."""
    original = text_tokens = ids_tokens = failures = 0
    texts = input_set.texts
    for text in tqdm(texts, desc=input_set.name, unit="item", disable=len(texts) < 10):
        result = compressor.compress(text)
        ids = compressor.tokenizer.encode(text)
        encoded = compressor.compress_ids(text)
        failures += compressor.decompress(result.text) != text
        failures += compressor.decompress_ids(encoded) != ids
        original += result.original_tokens
        text_tokens += result.compressed_tokens
        ids_tokens += len(encoded.ids)
        failures += result.original_tokens != len(ids)  # both renderings start from one count
    return {
        "input": input_set.name,
        "items": len(texts),
        "original_tokens": original,
        "text_tokens": text_tokens,
        "text_saving_%": _saving(original, text_tokens),
        "ids_tokens": ids_tokens,
        "ids_saving_%": _saving(original, ids_tokens),
        "paper_saving_%": PAPER_SAVING,
        "roundtrip_failures": failures,
    }


def _saving(original: int, compressed: int) -> float:
    return round(100.0 * (original - compressed) / original, 2) if original else 0.0


def speed_row(compressor, input_set: InputSet, repeats: int) -> dict[str, object]:
    """p50 speed of tokenization and of ``compress_ids`` (on pre-tokenized ids), one core."""
    from ragpress.compressors.metatoken import compress_ids

    text = "\n\n".join(input_set.texts)
    tokenizer = compressor.tokenizer
    tokenize = measure(lambda: tokenizer.encode(text), warmup=0, repeats=repeats)
    ids = tokenizer.encode(text)
    vocab = tokenizer.vocab_size
    encode = measure(lambda: compress_ids(ids, meta_base=vocab), warmup=1, repeats=repeats)
    finder_speed = tokens_per_second(len(ids), encode.p50_ms)
    both_ms = tokenize.p50_ms + encode.p50_ms
    return {
        "input": input_set.name,
        "tokens": len(ids),
        "tokenize_p50_ms": round(tokenize.p50_ms, 1),
        "tokenize_tok/s": round(tokens_per_second(len(ids), tokenize.p50_ms)),
        "compress_ids_p50_ms": round(encode.p50_ms, 1),
        "compress_ids_p95_ms": round(encode.p95_ms, 1),
        "compress_ids_tok/s": round(finder_speed),
        "tokenize+compress_tok/s": round(tokens_per_second(len(ids), both_ms)),
        "target_met": finder_speed >= TARGET_TOKENS_PER_S,
        "runs_ms": [round(run, 1) for run in encode.runs],
    }


# ---- main ---------------------------------------------------------------------------------


def build_inputs(compressor, articles: int) -> list[InputSet]:
    wiki = wikipedia_summaries()
    corpus = wikipedia_corpus(wiki, compressor.tokenizer.count)
    sources = python_sources()
    return [
        InputSet(f"wikipedia per-article ({articles})", wikipedia_articles(wiki, articles)),
        InputSet("wikipedia corpus (joined)", [corpus], speed=True),
        InputSet("application logs", [application_logs()], speed=True),
        InputSet("json records", [json_records()], speed=True),
        InputSet(f"python source per-file ({len(sources)})", sources),
        InputSet("python source (joined)", ["\n\n".join(sources)]),
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000, help="per-article Wikipedia items")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per speed input")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = pin_one_core()
    import ragpress

    compressor = ragpress.get_compressor("metatoken")
    inputs = build_inputs(compressor, args.articles)
    rows = [compression_row(compressor, input_set) for input_set in inputs]
    timed = [input_set for input_set in inputs if input_set.speed]
    speed = [speed_row(compressor, s, args.repeats) for s in tqdm(timed, desc="speed")]
    notes = [*_speed_notes(speed), *_run_notes(compressor, cpu)]
    command = shlex.join(["python", "-m", "bench.metatoken", *sys.argv[1:]])
    extra = {"speed (one core, p50 over repeats)": speed, "notes": notes}
    json_path, md_path = write_results("metatoken", rows, command, extra)
    print(markdown_table(rows), "", markdown_table(speed), "", *notes, sep="\n")
    print(f"\nwrote {json_path} and {md_path}")
    return 0 if all(row["roundtrip_failures"] == 0 for row in rows) else 1


def _run_notes(compressor, cpu: int | None) -> list[str]:
    tokenizer = compressor.tokenizer
    return [
        f"Target tokenizer: {tokenizer.name} (vocab {tokenizer.vocab_size}); pinned to CPU "
        f"{cpu}; OMP/OPENBLAS threads {os.environ['OMP_NUM_THREADS']}.",
        f"Paper: {PAPER_SAVING}% saving (Lossless Token Sequence Compression via Meta-Tokens, "
        "2025). Savings are summed over the items of each set; a negative saving means the "
        "rendering is longer than the input.",
    ]


def _speed_notes(speed: Sequence[dict[str, object]]) -> list[str]:
    notes = []
    for row in speed:
        rate = float(row["compress_ids_tok/s"])  # type: ignore[arg-type]
        verdict = "met" if row["target_met"] else f"NOT met ({rate / TARGET_TOKENS_PER_S:.0%})"
        notes.append(f"{row['input']}: compress_ids {rate:,.0f} tokens/s; 1M tokens/s {verdict}")
    return notes


# -- its section of bench/RESULTS.md ---------------------------------------------------------


def metatoken_paragraph(results: Results) -> str:
    result = results.get("metatoken")
    if result is None:
        return "**metatoken** (lossless): " + missing_note("metatoken", COMMANDS)
    rows = result["rows"]
    best = max(rows, key=lambda r: r["text_saving_%"])
    worst = min(rows, key=lambda r: r["text_saving_%"])
    text = (
        f"**metatoken** (lossless) wins on repetitive input: on {best['input']} it saves "
        f"{pct(best['text_saving_%'])} of the tokens as text any LLM reads and "
        f"{pct(best['ids_saving_%'])} as reserved ids. It gains least on {worst['input']}: "
        f"{pct(worst['text_saving_%'])} as text ({pct(worst['ids_saving_%'])} as ids)"
    )
    if worst["text_saving_%"] < worst["ids_saving_%"]:
        text += (
            ", because the text rendering pays for its markers and only replaces runs that save "
            "tokens"
        )
    text += ". " + _paper_sentence(rows) + _roundtrip_sentence(rows) + _run_finder_sentence(result)
    return text


def _paper_sentence(rows: list[dict[str, Any]]) -> str:
    bounds = re.findall(r"[\d.]+", str(rows[0].get("paper_saving_%", "")))
    if not bounds:
        return ""
    low = float(bounds[0])
    reach = [r["input"] for r in rows if r["ids_saving_%"] >= low]
    short = [r["input"] for r in rows if r["ids_saving_%"] < low]
    text = f"As ids it reaches the paper's {rows[0]['paper_saving_%']}% on "
    if not reach:
        return text + "none of the inputs. "
    return text + (f"every input but {joined(short)}. " if short else "every input. ")


def _roundtrip_sentence(rows: list[dict[str, Any]]) -> str:
    failures = sum(r.get("roundtrip_failures", 0) for r in rows)
    items = sum(r.get("items", 0) for r in rows)
    if failures:
        return f"{failures:,} of {items:,} round-trips FAILED. "
    return f"All {items:,} round-trips are exact. "


def _run_finder_sentence(result: Result) -> str:
    rows: list[dict[str, Any]] = next(
        (v for k, v in result.get("extra", {}).items() if k.startswith("speed")), []
    )
    finder = [r["compress_ids_tok/s"] for r in rows if "compress_ids_tok/s" in r]
    tokenize = [r["tokenize_tok/s"] for r in rows if "tokenize_tok/s" in r]
    if not finder or not tokenize:
        return ""
    slower = "tokenizing" if max(tokenize) < min(finder) else "the run finder"
    return (
        f"The run finder handles {num(min(finder), 0)}-{num(max(finder), 0)} tokens/s on one "
        f"core, tokenizing {num(min(tokenize), 0)}-{num(max(tokenize), 0)}: {slower} is the "
        "slower step."
    )


#: Its paragraphs in "Where each compressor wins and loses" (bench/report.py orders them).
REPORT: dict[str, Paragraph] = {"metatoken": metatoken_paragraph}


if __name__ == "__main__":
    sys.exit(main())
