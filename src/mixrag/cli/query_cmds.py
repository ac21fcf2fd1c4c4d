"""``mixrag search``, ``ask`` and ``score``: one question against an index.

Each opens a :class:`~mixrag.knowledge_base.KnowledgeBase`, the Python API's entry
point, so a program and the command line get the same hits and answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mixrag.cli.options import (
    AllowEchoOpt,
    AnswerKOpt,
    BeamsOpt,
    Bm25WeightOpt,
    CacheOpt,
    DeviceOpt,
    DtypeOpt,
    GeneratorKeyOpt,
    GeneratorUrlOpt,
    IndexOpt,
    JsonOpt,
    MethodOpt,
    MinConfidenceOpt,
    MinRelevanceOpt,
    ModelOpt,
    ModeOpt,
    ServedModelOpt,
    StoreOpt,
    TauOpt,
    echo_json,
    relevance_threshold,
    remote_config,
    target,
)
from mixrag.support import DEFAULT_MIN_CONFIDENCE, DEFAULT_MIN_RELEVANCE

if TYPE_CHECKING:
    from mixrag.answer import RAGConfig
    from mixrag.generator.vllm_client import VLLMConfig
    from mixrag.knowledge_base import KnowledgeBase


def search_cmd(
    question: Annotated[str, typer.Argument(help="The question x.")],
    index: IndexOpt = None,
    store: StoreOpt = None,
    k: Annotated[str, typer.Option("-k", help="Passages to return, or 'all'.")] = "5",
    method: MethodOpt = "combined",
    tau: TauOpt = None,
    bm25_weight: Bm25WeightOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrieve the top-k passages with their scores and prior p_eta(z|x)."""
    from mixrag.cli.format import hits_text
    from mixrag.knowledge_base import KnowledgeBase
    from mixrag.retriever.retriever import parse_k

    kk = parse_k(k)
    with KnowledgeBase.open(
        target(index, store), method=method, tau=tau, bm25_weight=bm25_weight
    ) as kb:
        hits = kb.search(question, k=kk)
        used_tau, weight = kb.tau, kb.bm25_weight
    if as_json:
        echo_json(
            {
                "question": question,
                "method": method,
                "k": kk,
                "tau": used_tau,
                "bm25_weight": weight,
                "hits": [h.to_dict() for h in hits],
            }
        )
    else:
        typer.echo(hits_text(hits))


def _open(
    where: str | Path,
    model: str | None,
    device: str,
    dtype: str,
    passage_cache_mb: int | None,
    method: str,
    tau: float | None,
    answering: RAGConfig,
    remote: VLLMConfig | None = None,
    bm25_weight: float | None = None,
) -> KnowledgeBase:
    """The knowledge base ``ask`` and ``score`` answer from."""
    from mixrag.knowledge_base import KnowledgeBase

    return KnowledgeBase.open(
        where,
        model=model,
        device=device,
        dtype=dtype,
        passage_cache_mb=passage_cache_mb,
        method=method,
        tau=tau,
        bm25_weight=bm25_weight,
        answering=answering,
        remote=remote,
    )


def ask_cmd(
    question: Annotated[str, typer.Argument(help="The question x.")],
    index: IndexOpt = None,
    store: StoreOpt = None,
    mode: ModeOpt = "rag-sequence",
    k: AnswerKOpt = None,
    model: ModelOpt = None,
    method: MethodOpt = "combined",
    tau: TauOpt = None,
    bm25_weight: Bm25WeightOpt = None,
    beams: BeamsOpt = None,
    decoding: Annotated[
        str, typer.Option(help="RAG-Sequence decoding: thorough or fast.")
    ] = "thorough",
    max_new_tokens: Annotated[int, typer.Option(help="Answer length limit in tokens.")] = 32,
    alternatives: Annotated[
        int,
        typer.Option(
            help="Also show up to this many other answers the mixture ranked below, with "
            "their p(y|x) (RAG-Sequence: its passages' answers; with --beams, the n-best)."
        ),
    ] = 0,
    allow_echo: AllowEchoOpt = False,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    passage_cache_mb: CacheOpt = 2048,
    min_confidence: MinConfidenceOpt = DEFAULT_MIN_CONFIDENCE,
    min_relevance: MinRelevanceOpt = str(DEFAULT_MIN_RELEVANCE),
    show_guess: Annotated[
        bool, typer.Option(help="Show the best guess even when the documents do not support it.")
    ] = False,
    generator_url: GeneratorUrlOpt = None,
    generator_api_key: GeneratorKeyOpt = None,
    served_model: ServedModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question; show its probability, whether the indexed documents support it,
    and which passages it came from. Below --min-confidence it says "Not found in the
    documents." (the guess with --show-guess; --json always has it)."""
    from mixrag.answer import RAGConfig
    from mixrag.cli.format import answer_text

    answering = RAGConfig(
        mode=mode,
        num_beams=beams,
        sequence_decoding=decoding,
        max_new_tokens=max_new_tokens,
        min_confidence=min_confidence,
        min_relevance=relevance_threshold(min_relevance),
        alternatives=alternatives,
        allow_echo=allow_echo,
    )
    where = target(index, store)
    remote = remote_config(generator_url, generator_api_key, served_model)
    opened = _open(
        where, model, device, dtype, passage_cache_mb, method, tau, answering, remote, bm25_weight
    )
    with opened as kb:
        answer = kb.ask(question, k=k)
    if as_json:
        echo_json(answer.to_dict())
    else:
        typer.echo(answer_text(answer, show_guess=show_guess))


def score_cmd(
    question: Annotated[str, typer.Argument(help="The question x.")],
    answer: Annotated[str, typer.Argument(help="The candidate answer y.")],
    index: IndexOpt = None,
    store: StoreOpt = None,
    mode: ModeOpt = "rag-sequence",
    k: AnswerKOpt = None,
    model: ModelOpt = None,
    method: MethodOpt = "combined",
    tau: TauOpt = None,
    bm25_weight: Bm25WeightOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    generator_url: GeneratorUrlOpt = None,
    generator_api_key: GeneratorKeyOpt = None,
    served_model: ServedModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """log p(y|x) of a given answer under a mode, with each passage's share."""
    from mixrag.answer import RAGConfig
    from mixrag.cli.format import answer_text

    answering = RAGConfig(mode=mode)
    remote = remote_config(generator_url, generator_api_key, served_model)
    where = target(index, store)
    opened = _open(where, model, device, dtype, None, method, tau, answering, remote, bm25_weight)
    with opened as kb:
        result = kb.score(question, answer, k=k)
    if as_json:
        echo_json(result.to_dict())
    else:
        typer.echo(answer_text(result, scored=True))
