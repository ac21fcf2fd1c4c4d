"""``mixrag search``, ``ask`` and ``score``: one question against an index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mixrag.cli.options import (
    CacheOpt,
    DeviceOpt,
    DtypeOpt,
    IndexOpt,
    JsonOpt,
    ModelOpt,
    ModeOpt,
    StoreOpt,
    TauOpt,
    echo_json,
    generator_options,
    target,
)
from mixrag.retriever.retriever import DEFAULT_TAU


def search_cmd(
    question: Annotated[str, typer.Argument(help="The question x.")],
    index: IndexOpt = None,
    store: StoreOpt = None,
    k: Annotated[str, typer.Option("-k", help="Passages to return, or 'all'.")] = "5",
    method: Annotated[str, typer.Option(help="dense, bm25 or hybrid.")] = "dense",
    tau: TauOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrieve the top-k passages with their scores and prior p_eta(z|x)."""
    from mixrag.cli.format import hits_text
    from mixrag.index.opening import open_index
    from mixrag.retriever.retriever import RetrieverConfig, parse_k

    kk = parse_k(k)
    with open_index(target(index, store)) as idx:
        retriever = idx.retriever(
            RetrieverConfig(method=method, tau=DEFAULT_TAU if tau is None else tau)
        )
        hits = retriever.search(question, k=kk)
    if as_json:
        echo_json(
            {
                "question": question,
                "method": method,
                "k": kk,
                "tau": retriever.config.tau,
                "hits": [h.to_dict() for h in hits],
            }
        )
    else:
        typer.echo(hits_text(hits))


def _rag(
    index: str | Path,
    model: str | None,
    mode: str,
    k: str,
    method: str,
    tau: float | None,
    beams: int,
    decoding: str,
    max_new_tokens: int,
    options: dict[str, Any] | None = None,
) -> Any:
    from mixrag.rag import RAG, RAGConfig

    cfg = RAGConfig(
        mode=mode,
        num_beams=beams,
        sequence_decoding=decoding,
        max_new_tokens=max_new_tokens,
    )
    return RAG.open(
        str(index),
        model=model,
        config=cfg,
        k=k,
        method=method,
        tau=tau,
        generator_options=options,
    )


def ask_cmd(
    question: Annotated[str, typer.Argument(help="The question x.")],
    index: IndexOpt = None,
    store: StoreOpt = None,
    mode: ModeOpt = "rag-sequence",
    k: Annotated[str, typer.Option("-k", help="Passages in the mixture (K), or 'all'.")] = "5",
    model: ModelOpt = None,
    method: Annotated[str, typer.Option(help="Retrieval: dense, bm25 or hybrid.")] = "dense",
    tau: TauOpt = None,
    beams: Annotated[int, typer.Option(help="Beam width (per passage for RAG-Sequence).")] = 1,
    decoding: Annotated[
        str, typer.Option(help="RAG-Sequence decoding: thorough or fast.")
    ] = "thorough",
    max_new_tokens: Annotated[int, typer.Option(help="Answer length limit in tokens.")] = 32,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    passage_cache_mb: CacheOpt = 2048,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question; show its probability and which passages it came from."""
    from mixrag.cli.format import answer_text

    options = generator_options(device, dtype, passage_cache_mb)
    where = target(index, store)
    rag = _rag(where, model, mode, k, method, tau, beams, decoding, max_new_tokens, options)
    answer = rag.ask(question)
    if as_json:
        echo_json(answer.to_dict())
    else:
        typer.echo(answer_text(answer))


def score_cmd(
    question: Annotated[str, typer.Argument(help="The question x.")],
    answer: Annotated[str, typer.Argument(help="The candidate answer y.")],
    index: IndexOpt = None,
    store: StoreOpt = None,
    mode: ModeOpt = "rag-sequence",
    k: Annotated[str, typer.Option("-k", help="Passages in the mixture (K), or 'all'.")] = "5",
    model: ModelOpt = None,
    method: Annotated[str, typer.Option(help="Retrieval: dense, bm25 or hybrid.")] = "dense",
    tau: TauOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    as_json: JsonOpt = False,
) -> None:
    """log p(y|x) of a given answer under a mode, with each passage's share."""
    from mixrag.cli.format import answer_text

    options = generator_options(device, dtype)
    rag = _rag(target(index, store), model, mode, k, method, tau, 1, "thorough", 32, options)
    result = rag.score(question, answer)
    if as_json:
        echo_json(result.to_dict())
    else:
        typer.echo(answer_text(result, scored=True))
