"""``ragpress`` command line: compress, decompress, methods."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ragpress import DEFAULT_METHOD, QUERY_METHOD, available, get_compressor

app = typer.Typer(
    help="Compress the context a RAG pipeline sends to an LLM.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

SAMPLE = "sample"


#: What a command reports as "error: ..." (exit 2) instead of a traceback: bad arguments, a
#: missing extra, and files (models, the cache, a hub unreachable offline) that the message
#: says how to fix. OSError covers ragpress's ModelNotFoundError and a hub that cannot be reached.
USER_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, ImportError, OSError)


def _read_input(source: str) -> str:
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


@app.command()
def compress(
    source: Annotated[
        str, typer.Argument(metavar="FILE", help="A text file, '-' for stdin, or 'sample'.")
    ] = "-",
    query: Annotated[str | None, typer.Option("--query", "-q", help="The question.")] = None,
    method: Annotated[str, typer.Option("--method", "-m", help="See `ragpress methods`.")] = (
        DEFAULT_METHOD
    ),
    rate: Annotated[float | None, typer.Option(help="Share of tokens to keep, in (0, 1].")] = None,
    target_tokens: Annotated[
        int | None, typer.Option("--target-tokens", help="Token budget for the output.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
) -> None:
    """Compress a context and print it, then a one-line summary on stderr."""
    text = _read_input(source)
    try:
        compressor = get_compressor(method)
        result = compressor.compress(text, query, rate=rate, target_tokens=target_tokens)
    except _model_errors() as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(result.text)
        sys.stdout.flush()
        typer.echo("", err=True)
        typer.echo(result.summary(), err=True)


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
    role: Annotated[str | None, typer.Option(help="nll or token-logits.")] = None,
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


@models_app.command("list")
def models_list() -> None:
    """The model catalogue, with which sources are available here."""
    from ragpress.onnx.catalogue import CATALOGUE

    for spec in CATALOGUE:
        packaged = spec.packaged is not None and spec.packaged.available()
        typer.echo(
            f"{spec.name:14} {spec.kind:10} roles={','.join(spec.roles):13} "
            f"packaged={'yes' if packaged else 'no ':3} hub={spec.hub_id}"
        )


train_app = typer.Typer(help="Reproduce the learned parts from package-shipped models and data.")
OUT_HELP = "Where to write the result (default: $RAGPRESS_HOME/trained/)."
SHIP_HELP = "Replace the file shipped in ragpress/data (what the compressors load by default)."
app.add_typer(train_app, name="train")


@train_app.command("attention-probe")
def train_attention_probe(
    model: Annotated[str, typer.Option(help="Proxy decoder (catalogue name).")] = "smollm2-135m",
    items: Annotated[int, typer.Option(help="Training QA items.")] = 300,
    eval_items: Annotated[int, typer.Option(help="Held-out dev items for ROC AUC.")] = 100,
    out: Annotated[str | None, typer.Option("--out", "--output", help=OUT_HELP)] = None,
    ship: Annotated[bool, typer.Option(help=SHIP_HELP)] = False,
) -> None:
    """Train the attention probe on development QA data (bigbench disfl_qa)."""
    from ragpress.training.attention_probe import train

    try:
        stats = train(
            model=model,
            items=items,
            eval_items=eval_items,
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
    from ragpress.training.outputs import output_path
    from ragpress.training.token_classifier import DELTA, train

    try:
        output = output_path(DELTA, out=Path(out) if out else None, ship=ship)
    except ValueError as error:
        _fail(error)
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
        int | None, typer.Option(help="Training pairs sampled (default 5,000; all: ~19k).")
    ] = 5000,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps (batch 16).")] = 220,
    train_layers: Annotated[int, typer.Option(help="Top encoder layers trained.")] = 4,
    out: Annotated[str | None, typer.Option("--out", "--output", help=OUT_HELP)] = None,
    ship: Annotated[bool, typer.Option(help=SHIP_HELP)] = False,
    export: Annotated[bool, typer.Option(help="With --ship: export the model after.")] = True,
) -> None:
    """Train the Provence-style relevance cross-encoder (MiniLM-L6) on bigbench QA pairs."""
    from ragpress.training.outputs import output_path
    from ragpress.training.relevance import DELTA, train

    try:
        output = output_path(DELTA, out=Path(out) if out else None, ship=ship)
    except ValueError as error:
        _fail(error)
    stats = train(
        pairs=pairs,
        max_steps=steps,
        train_layers=train_layers,
        output=output,
        export=export and ship,  # the catalogue's minilm-l6-relevance applies the shipped delta
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
    """List the compression methods."""
    for name in available():
        typer.echo(name)


if __name__ == "__main__":
    app()
