"""``mixrag serve``: the index over HTTP (the JSON API and the web page)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from mixrag.cli.options import (
    Bm25WeightOpt,
    CacheOpt,
    DefaultKOpt,
    DeviceOpt,
    DtypeOpt,
    GeneratorKeyOpt,
    GeneratorUrlOpt,
    IndexOpt,
    MinConfidenceOpt,
    MinRelevanceOpt,
    ModelOpt,
    ModeOpt,
    ServedModelOpt,
    StoreOpt,
    TauOpt,
    generator_options,
    relevance_threshold,
    remote_config,
    target,
)
from mixrag.support import DEFAULT_MIN_CONFIDENCE, DEFAULT_MIN_RELEVANCE


def serve_cmd(
    index: IndexOpt = None,
    store: StoreOpt = None,
    model: ModelOpt = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [127.0.0.1: this machine only].")
    ] = None,
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    token_file: Annotated[
        Path | None,
        typer.Option(help="File holding the bearer token every /v1 endpoint then requires."),
    ] = None,
    mode: ModeOpt = "rag-sequence",
    min_confidence: MinConfidenceOpt = DEFAULT_MIN_CONFIDENCE,
    min_relevance: MinRelevanceOpt = str(DEFAULT_MIN_RELEVANCE),
    k: DefaultKOpt = None,
    beams: Annotated[
        int | None,
        typer.Option(
            help="Default beam width of asks that give none [2 for rag-sequence, else 1]; "
            "1 answers more asks a second with less memory, at some EM."
        ),
    ] = None,
    method: Annotated[
        str, typer.Option(help="Default retrieval: combined, dense, bm25 or hybrid.")
    ] = "combined",
    tau: TauOpt = None,
    bm25_weight: Bm25WeightOpt = None,
    max_k: Annotated[int, typer.Option(help="Largest K a request may ask for.")] = 20,
    max_question_chars: Annotated[int, typer.Option(help="Longest question accepted.")] = 2000,
    max_upload_mb: Annotated[float, typer.Option(help="Largest uploaded document, MB.")] = 10.0,
    max_waiting: Annotated[
        int, typer.Option(help="Asks queued for the generator before 503 Busy.")
    ] = 8,
    max_batch: Annotated[
        int, typer.Option(help="Most waiting asks answered together in one batch.")
    ] = 8,
    max_running: Annotated[
        int,
        typer.Option(
            help="Batches of asks decoding at once; each forward pass serves all of them "
            "(continuous batching). 1: one batch after another."
        ),
    ] = 4,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    passage_cache_mb: CacheOpt = 2048,
    generator_url: GeneratorUrlOpt = None,
    generator_api_key: GeneratorKeyOpt = None,
    served_model: ServedModelOpt = None,
    mcp: Annotated[
        bool, typer.Option("--mcp/--no-mcp", help="Serve the MCP tools at /mcp (streamable HTTP).")
    ] = True,
    mcp_read_only: Annotated[
        bool,
        typer.Option(
            help="/mcp offers no add_document / remove_document (the /v1 API still does)."
        ),
    ] = False,
) -> None:
    """Serve the index over HTTP: the JSON API (streaming answers), MCP at /mcp, a web page at /."""
    import uvicorn

    from mixrag.server import ServerConfig, create_app
    from mixrag.server.config import MiB, read_token_file
    from mixrag.server.mcp import McpConfig
    from mixrag.store.pg_url import redact

    location = target(index, store)
    config = ServerConfig(
        index=location,
        model=model,
        host=host or "127.0.0.1",
        port=port,
        token=read_token_file(token_file) if token_file is not None else None,
        max_question_chars=max_question_chars,
        max_k=max_k,
        max_upload_bytes=int(max_upload_mb * MiB),
        max_waiting=max_waiting,
        max_batch=max_batch,
        max_running=max_running,
        mode=mode,
        min_confidence=min_confidence,
        min_relevance=relevance_threshold(min_relevance),
        k=k,
        beams=beams,
        method=method,
        tau=tau,
        bm25_weight=bm25_weight,
        mcp=McpConfig(read_only=mcp_read_only) if mcp else None,
        remote=remote_config(generator_url, generator_api_key, served_model),
        **generator_options(device, dtype, passage_cache_mb),
    )
    log = logging.getLogger("mixrag.server")
    if config.is_open:
        where = "this machine" if config.is_loopback else f"anyone who can reach {config.host}"
        log.warning(
            "no --token-file: the API is open to %s (read, upload and delete documents)", where
        )
    logging.getLogger("mixrag").setLevel(logging.INFO)
    application = create_app(config)
    where = redact(str(location)) if store is not None else str(location)
    typer.echo(f"mixrag: serving {where} on http://{config.host}:{config.port}/", err=True)
    uvicorn.run(
        application,
        host=config.host,
        port=config.port,
        timeout_graceful_shutdown=config.shutdown_timeout,
        log_level="info",
    )
