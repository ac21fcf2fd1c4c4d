"""``mixrag mcp``: the index as MCP tools over stdio, for MCP clients (IDEs, chat apps, agents)."""

from __future__ import annotations

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


def mcp_cmd(
    index: IndexOpt = None,
    store: StoreOpt = None,
    read_only: Annotated[
        bool,
        typer.Option(
            "--read-only",
            help="Offer search, ask, score and list_documents only (no add_document / "
            "remove_document); the index must exist.",
        ),
    ] = False,
    model: ModelOpt = None,
    mode: ModeOpt = "rag-sequence",
    min_confidence: MinConfidenceOpt = DEFAULT_MIN_CONFIDENCE,
    min_relevance: MinRelevanceOpt = str(DEFAULT_MIN_RELEVANCE),
    k: DefaultKOpt = None,
    method: Annotated[
        str, typer.Option(help="Default retrieval: combined, dense, bm25 or hybrid.")
    ] = "combined",
    tau: TauOpt = None,
    bm25_weight: Bm25WeightOpt = None,
    max_k: Annotated[int, typer.Option(help="Largest K a call may ask for.")] = 20,
    max_question_chars: Annotated[int, typer.Option(help="Longest question accepted.")] = 2000,
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest document add_document takes, MB.")
    ] = 10.0,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    passage_cache_mb: CacheOpt = 2048,
    generator_url: GeneratorUrlOpt = None,
    generator_api_key: GeneratorKeyOpt = None,
    served_model: ServedModelOpt = None,
) -> None:
    """Serve the index as MCP tools over stdin/stdout (stdout carries only the protocol).

    An MCP client starts this command itself; see the README ("MCP") for its configuration.
    """
    from mixrag.server import ServerConfig
    from mixrag.server.config import MiB
    from mixrag.server.mcp import McpConfig
    from mixrag.server.mcp.stdio import serve_stdio

    config = ServerConfig(
        index=target(index, store),
        model=model,
        max_question_chars=max_question_chars,
        max_k=max_k,
        max_upload_bytes=int(max_upload_mb * MiB),
        mode=mode,
        min_confidence=min_confidence,
        min_relevance=relevance_threshold(min_relevance),
        k=k,
        method=method,
        tau=tau,
        bm25_weight=bm25_weight,
        mcp=McpConfig(read_only=read_only),
        remote=remote_config(generator_url, generator_api_key, served_model),
        **generator_options(device, dtype, passage_cache_mb),
    )
    serve_stdio(config)
