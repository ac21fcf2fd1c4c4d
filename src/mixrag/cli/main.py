"""The ``mixrag`` command: parse, call the library, format. Nothing here the API cannot do."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mixrag.errors import MixragError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="mixrag: retrieval-augmented generation as a mixture model (Lewis et al., 2020).",
)

IndexOpt = Annotated[Path, typer.Option("--index", "-i", help="Index folder.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
    threads: Annotated[
        int, typer.Option("--threads", help="CPU threads for the models (0 = torch's default).")
    ] = 0,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # The libraries' own load bars and notices are noise in a command-line tool.
        import os
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)

        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        logging.getLogger("mixrag.ingest.pipeline").setLevel(logging.ERROR)
    if threads:
        import torch

        torch.set_num_threads(threads)


@app.command("index")
def index_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively).")],
    index: IndexOpt,
    words: Annotated[
        int | None, typer.Option(help="Passage length in words [new index: 100].")
    ] = None,
    overlap: Annotated[
        int | None, typer.Option(help="Words shared by consecutive passages [0].")
    ] = None,
    sentences: Annotated[
        bool | None, typer.Option("--sentences/--no-sentences", help="Pack whole sentences.")
    ] = None,
    balanced: Annotated[
        bool | None,
        typer.Option(
            "--balanced/--no-balanced",
            help="Cut documents into equal-length passages [yes] (no: full passages + a tail).",
        ),
    ] = None,
    encoder: Annotated[
        str | None, typer.Option(help="Sentence-transformers model name or folder.")
    ] = None,
    index_kind: Annotated[
        str | None, typer.Option("--index-kind", help="auto, flat or hnsw [auto].")
    ] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add files to an index (created if missing); unchanged files are not re-encoded."""
    from mixrag.cli.format import report_text
    from mixrag.cli.progress import IngestBar
    from mixrag.config import IndexConfig
    from mixrag.index.folder import Index

    chunk_opts = {"words": words, "overlap": overlap, "sentences": sentences, "balanced": balanced}
    existing = Index.open(index) if (index / "mixrag.json").exists() else None
    asked = (existing.config if existing else IndexConfig()).with_overrides(
        chunking={k: v for k, v in chunk_opts.items() if v is not None},
        encoder={"model": encoder} if encoder is not None else {},
        vectors={"kind": index_kind} if index_kind is not None else {},
    )
    if existing is not None:
        existing.check_config(asked)  # a different chunking or encoder is refused
        idx = existing
    else:
        idx = Index.open(index, create=True, config=asked)
    with idx, IngestBar(progress) as bar:
        report = idx.add([str(p) for p in paths], progress=bar)
    if as_json:
        _echo_json(report.to_dict())
    else:
        typer.echo(report_text(report))
    if not report.ok:
        raise typer.Exit(1)


@app.command("rm")
def rm_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Indexed files or folders to remove.")],
    index: IndexOpt,
) -> None:
    """Remove documents (by their source file or folder) from an index."""
    from mixrag.index.folder import Index

    with Index.open(index) as idx:
        removed = idx.remove([str(p) for p in paths])
    typer.echo(f"removed {len(removed)} file(s): " + ", ".join(removed))


@app.command("search")
def search_cmd(
    question: Annotated[str, typer.Argument(help="The question x.")],
    index: IndexOpt,
    k: Annotated[str, typer.Option("-k", help="Passages to return, or 'all'.")] = "5",
    method: Annotated[str, typer.Option(help="dense, bm25 or hybrid.")] = "dense",
    tau: Annotated[float, typer.Option(help="Prior temperature: softmax(score / tau).")] = 1.0,
    as_json: JsonOpt = False,
) -> None:
    """Retrieve the top-k passages with their scores and prior p_eta(z|x)."""
    from mixrag.cli.format import hits_text
    from mixrag.index.folder import Index
    from mixrag.retriever.retriever import RetrieverConfig, parse_k

    kk = parse_k(k)
    with Index.open(index) as idx:
        retriever = idx.retriever(RetrieverConfig(method=method, tau=tau))
        hits = retriever.search(question, k=kk)
    if as_json:
        _echo_json(
            {
                "question": question,
                "method": method,
                "k": kk,
                "tau": tau,
                "hits": [h.to_dict() for h in hits],
            }
        )
    else:
        typer.echo(hits_text(hits))


ModeOpt = Annotated[
    str, typer.Option("--mode", "-m", help="rag-sequence, rag-token, concat or closed-book.")
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="Generator: smollm2-135m, qwen2.5-0.5b, or a model folder."),
]


def _rag(
    index: Path,
    model: str | None,
    mode: str,
    k: str,
    method: str,
    tau: float,
    beams: int,
    decoding: str,
    max_new_tokens: int,
) -> Any:
    from mixrag.rag import RAG, RAGConfig
    from mixrag.retriever.retriever import parse_k

    parsed = parse_k(k)
    if parsed == "all":
        from mixrag.index.folder import Index

        with Index.open(index) as idx:
            kk = max(1, idx.store.counts()["passages"])
    else:
        kk = parsed
    cfg = RAGConfig(
        mode=mode,
        k=kk,
        num_beams=beams,
        sequence_decoding=decoding,
        max_new_tokens=max_new_tokens,
    )
    return RAG.open(str(index), model=model, config=cfg, method=method, tau=tau)


@app.command("ask")
def ask_cmd(
    question: Annotated[str, typer.Argument(help="The question x.")],
    index: IndexOpt,
    mode: ModeOpt = "rag-sequence",
    k: Annotated[str, typer.Option("-k", help="Passages in the mixture (K), or 'all'.")] = "5",
    model: ModelOpt = None,
    method: Annotated[str, typer.Option(help="Retrieval: dense, bm25 or hybrid.")] = "dense",
    tau: Annotated[float, typer.Option(help="Prior temperature: softmax(score / tau).")] = 1.0,
    beams: Annotated[int, typer.Option(help="Beam width (per passage for RAG-Sequence).")] = 1,
    decoding: Annotated[
        str, typer.Option(help="RAG-Sequence decoding: thorough or fast.")
    ] = "thorough",
    max_new_tokens: Annotated[int, typer.Option(help="Answer length limit in tokens.")] = 32,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question; show its probability and which passages it came from."""
    from mixrag.cli.format import answer_text

    rag = _rag(index, model, mode, k, method, tau, beams, decoding, max_new_tokens)
    answer = rag.ask(question)
    if as_json:
        _echo_json(answer.to_dict())
    else:
        typer.echo(answer_text(answer))


@app.command("score")
def score_cmd(
    question: Annotated[str, typer.Argument(help="The question x.")],
    answer: Annotated[str, typer.Argument(help="The candidate answer y.")],
    index: IndexOpt,
    mode: ModeOpt = "rag-sequence",
    k: Annotated[str, typer.Option("-k", help="Passages in the mixture (K), or 'all'.")] = "5",
    model: ModelOpt = None,
    method: Annotated[str, typer.Option(help="Retrieval: dense, bm25 or hybrid.")] = "dense",
    tau: Annotated[float, typer.Option(help="Prior temperature: softmax(score / tau).")] = 1.0,
    as_json: JsonOpt = False,
) -> None:
    """log p(y|x) of a given answer under a mode, with each passage's share."""
    from mixrag.cli.format import answer_text

    rag = _rag(index, model, mode, k, method, tau, 1, "thorough", 32)
    result = rag.score(question, answer)
    if as_json:
        _echo_json(result.to_dict())
    else:
        typer.echo(answer_text(result, scored=True))


@app.command("info")
def info_cmd(index: IndexOpt, as_json: JsonOpt = False) -> None:
    """Documents, passages, encoder, vector index kind and size on disk."""
    from mixrag.cli.format import info_text
    from mixrag.index.folder import Index

    with Index.open(index) as idx:
        info = idx.info()
    typer.echo(json.dumps(info, indent=2) if as_json else info_text(info))


def main() -> None:
    """Entry point: user mistakes become one line on stderr and a non-zero exit code."""
    try:
        app()
    except MixragError as e:
        typer.echo(f"mixrag: error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo(
            "mixrag: interrupted; everything committed before is intact, re-run to finish",
            err=True,
        )
        sys.exit(130)


if __name__ == "__main__":
    main()
