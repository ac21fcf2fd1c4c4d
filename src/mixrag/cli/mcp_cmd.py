"""``mixrag mcp``: the index as MCP tools over stdio, for MCP clients (IDEs, chat apps, agents)."""

from __future__ import annotations

from typing import Annotated

import typer

from mixrag.cli.options import (
    Bm25WeightOpt,
    CacheOpt,
    DeviceOpt,
    DtypeOpt,
    IndexOpt,
    MinConfidenceOpt,
    ModelOpt,
    ModeOpt,
    StoreOpt,
    TauOpt,
    generator_options,
    target,
)
from mixrag.support import DEFAULT_MIN_CONFIDENCE


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
    k: Annotated[int, typer.Option("-k", help="Default K of calls that give none.")] = 5,
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
        k=k,
        method=method,
        tau=tau,
        bm25_weight=bm25_weight,
        mcp=McpConfig(read_only=read_only),
        **generator_options(device, dtype, passage_cache_mb),
    )
    serve_stdio(config)
