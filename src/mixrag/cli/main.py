"""The ``mixrag`` command: parse, call the library, format. Nothing here the API cannot do."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mixrag.errors import MixragError
from mixrag.retriever.retriever import DEFAULT_TAU
from mixrag.train.config import TrainConfig

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="mixrag: retrieval-augmented generation as a mixture model (Lewis et al., 2020).",
)

IndexOpt = Annotated[Path | None, typer.Option("--index", "-i", help="Index folder.")]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="A PostgreSQL store instead of an index folder: postgresql://user@host/db"
        "[#schema] (needs mixrag[postgres] and pgvector on the server).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _target(index: Path | None, store: str | None) -> str | Path:
    """The index an option pair names: a folder (--index) or a PostgreSQL store (--store)."""
    from mixrag.store.postgres import is_postgres_url

    if index is not None and store is not None:
        raise MixragError("give --index FOLDER or --store postgresql://..., not both")
    if store is not None:
        if not is_postgres_url(store):
            raise MixragError(f"--store must be a postgresql:// URL, got {store!r}")
        return store
    if index is None:
        raise MixragError("give --index FOLDER (or --store postgresql://...)")
    return index


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
    index: IndexOpt = None,
    store: StoreOpt = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Encode on a Ray cluster: auto (the running one), ray://host:port, or "
            "local (start one here). Needs mixrag[ray].",
        ),
    ] = None,
    ray_workers: Annotated[int, typer.Option(help="--ray: encoder actors (one model each).")] = 2,
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
        str | None,
        typer.Option(
            "--index-kind",
            help="auto (the default), flat, hnsw or ivfpq (compressed, exact re-ranking).",
        ),
    ] = None,
    mmap: Annotated[
        bool | None,
        typer.Option(
            "--mmap/--no-mmap",
            help="Search the vector index memory-mapped from disk (off by default).",
        ),
    ] = None,
    nlist: Annotated[
        int | None, typer.Option(help="ivfpq: inverted lists [0 = round(4·√N)].")
    ] = None,
    pq_m: Annotated[
        int | None, typer.Option(help="ivfpq: bytes per code; must divide the dimension [48].")
    ] = None,
    train_size: Annotated[
        int | None, typer.Option(help="ivfpq: vectors the quantisers are trained on [100000].")
    ] = None,
    nprobe: Annotated[
        int | None, typer.Option(help="ivfpq: lists searched per query [16].")
    ] = None,
    rerank_factor: Annotated[
        int | None,
        typer.Option(help="ivfpq: candidates re-ranked exactly, as a multiple of k [40]."),
    ] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add files to an index (created if missing); unchanged files are not re-encoded.

    Vector-index options given for an existing index replace its settings; a change of
    structure (kind, nlist, pq-m, train-size) rebuilds it from the stored vectors.
    """
    from mixrag.cli.format import report_text
    from mixrag.cli.progress import IngestBar
    from mixrag.index.config import IndexConfig
    from mixrag.index.opening import index_exists, open_index

    target = _target(index, store)
    chunk_opts = {"words": words, "overlap": overlap, "sentences": sentences, "balanced": balanced}
    vector_opts = {
        "kind": index_kind,
        "mmap": mmap,
        "ivf_nlist": nlist,
        "pq_m": pq_m,
        "ivf_train_size": train_size,
        "ivf_nprobe": nprobe,
        "rerank_factor": rerank_factor,
    }
    existing = open_index(target) if index_exists(target) else None
    asked = (existing.config if existing else IndexConfig()).with_overrides(
        chunking={k: v for k, v in chunk_opts.items() if v is not None},
        encoder={"model": encoder} if encoder is not None else {},
        vectors={k: v for k, v in vector_opts.items() if v is not None},
    )
    if existing is not None:
        existing.check_config(asked)  # a different chunking or encoder is refused
        idx = existing
    else:
        idx = open_index(target, create=True, config=asked)
    ray_encoder = None
    with idx:
        if ray is not None:
            from mixrag.encoders.ray import RayEncoder, RayEncoderConfig

            ray_encoder = RayEncoder(
                idx.encoder, RayEncoderConfig(address=ray, workers=ray_workers)
            )
            idx.use_encoder(ray_encoder)
        try:
            with IngestBar(progress) as bar:
                report = idx.add([str(p) for p in paths], progress=bar)
        finally:
            if ray_encoder is not None:
                ray_encoder.close()
    if as_json:
        _echo_json(report.to_dict())
    else:
        typer.echo(report_text(report))
    if not report.ok:
        raise typer.Exit(1)


@app.command("rm")
def rm_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Indexed files or folders to remove.")],
    index: IndexOpt = None,
    store: StoreOpt = None,
) -> None:
    """Remove documents (by their source file or folder) from an index."""
    from mixrag.index.opening import open_index

    with open_index(_target(index, store)) as idx:
        removed = idx.remove([str(p) for p in paths])
    typer.echo(f"removed {len(removed)} file(s): " + ", ".join(removed))


TauOpt = Annotated[
    float | None,
    typer.Option(
        help=f"Prior temperature: softmax(score / tau) [{DEFAULT_TAU}, or a training run's own]."
    ),
]


@app.command("search")
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
    with open_index(_target(index, store)) as idx:
        retriever = idx.retriever(
            RetrieverConfig(method=method, tau=DEFAULT_TAU if tau is None else tau)
        )
        hits = retriever.search(question, k=kk)
    if as_json:
        _echo_json(
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


ModeOpt = Annotated[
    str, typer.Option("--mode", "-m", help="rag-sequence, rag-token, concat or closed-book.")
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="Generator: smollm2-135m, qwen2.5-0.5b, or a model folder."),
]

DeviceOpt = Annotated[
    str,
    typer.Option(help="Generator device: cpu, cuda, cuda:N, mps, or auto (the first present)."),
]
DtypeOpt = Annotated[
    str,
    typer.Option(
        help="Generator dtype: float32 (exact log-probs), bfloat16 (2-3x faster on CPUs "
        "with AMX), float16, or auto (bfloat16 where it is fast)."
    ),
]

CacheOpt = Annotated[
    int,
    typer.Option(
        help="Memory for the passage KV cache, MiB (0: off); blocks beyond it are read "
        "from the index folder's passage-kv/ (mixrag warm) or computed again."
    ),
]


def _generator_options(device: str, dtype: str, cache_mb: int | None = None) -> dict[str, Any]:
    """GeneratorConfig fields from --device / --dtype / --passage-cache-mb, checked now."""
    from mixrag.generator.config import GeneratorConfig
    from mixrag.generator.models import resolve_device

    options: dict[str, Any] = {"device": device, "dtype": dtype}
    if cache_mb is not None:
        options["passage_cache_mb"] = cache_mb
    try:
        GeneratorConfig(**options)
    except ValueError as exc:
        raise MixragError(str(exc)) from exc
    resolve_device(device)  # absent device: ModelLoadError, one line
    return options


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
    generator_options: dict[str, Any] | None = None,
) -> Any:
    from mixrag.rag import RAG, RAGConfig
    from mixrag.retriever.retriever import parse_k

    parsed = parse_k(k)
    if parsed == "all":
        from mixrag.index.opening import open_index

        with open_index(index) as idx:
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
    return RAG.open(
        str(index),
        model=model,
        config=cfg,
        method=method,
        tau=tau,
        generator_options=generator_options,
    )


@app.command("ask")
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

    options = _generator_options(device, dtype, passage_cache_mb)
    target = _target(index, store)
    rag = _rag(target, model, mode, k, method, tau, beams, decoding, max_new_tokens, options)
    answer = rag.ask(question)
    if as_json:
        _echo_json(answer.to_dict())
    else:
        typer.echo(answer_text(answer))


@app.command("score")
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

    options = _generator_options(device, dtype)
    rag = _rag(_target(index, store), model, mode, k, method, tau, 1, "thorough", 32, options)
    result = rag.score(question, answer)
    if as_json:
        _echo_json(result.to_dict())
    else:
        typer.echo(answer_text(result, scored=True))


def _csv(value: str, name: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise MixragError(f"{name} needs at least one value, got {value!r}")
    return items


def _csv_ints(value: str, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in _csv(value, name))
    except ValueError:
        raise MixragError(f"{name} must be comma-separated integers, got {value!r}") from None


@app.command("eval")
def eval_cmd(
    dataset: Annotated[
        Path,
        typer.Option(help="Questions: SQuAD .json[.gz], .jsonl or NQ-open .tsv (see docs)."),
    ],
    out: Annotated[Path, typer.Option(help="Report folder (resumes the run it holds).")],
    index: IndexOpt = None,
    store: StoreOpt = None,
    build_index: Annotated[
        Path | None,
        typer.Option(help="Index the dataset's own paragraphs into this folder first."),
    ] = None,
    modes: Annotated[
        str, typer.Option(help="Comma-separated answer modes, or 'none' for retrieval only.")
    ] = "closed-book,concat,rag-sequence,rag-token",
    k: Annotated[str, typer.Option("-k", help="Passages K per answer; several: 1,5,10.")] = "5",
    limit: Annotated[int | None, typer.Option(help="Seeded sample of this many questions.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --limit sample.")] = 0,
    method: Annotated[str, typer.Option(help="Retrieval feeding the generator.")] = "dense",
    retrieval: Annotated[
        str | None,
        typer.Option(help="Retrieval methods to measure, e.g. dense,bm25,hybrid [--method]."),
    ] = None,
    recall_k: Annotated[str, typer.Option(help="k of recall@k and answer-in-top-k.")] = "1,5,20",
    model: ModelOpt = None,
    tau: TauOpt = None,
    batch_size: Annotated[int, typer.Option(help="Questions answered per batch.")] = 8,
    max_new_tokens: Annotated[int, typer.Option(help="Answer length limit in tokens.")] = 32,
    posteriors: Annotated[
        bool, typer.Option(help="Also score concat / closed-book answers per passage.")
    ] = False,
    fresh: Annotated[bool, typer.Option(help="Discard results the --out folder holds.")] = False,
    format: Annotated[
        str | None, typer.Option(help="Dataset format: squad, jsonl or nq-tsv [by extension].")
    ] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress")] = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    passage_cache_mb: CacheOpt = 2048,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate retrieval and answering on a question set; write a report folder.

    The folder gets results.json (every question), summary.md (one table per mode and
    per retrieval method) and plots/*.png. An interrupted run resumes on the next call.
    """
    import shlex
    import signal

    from mixrag.cli.progress import EvalBar
    from mixrag.eval.datasets import load_dataset
    from mixrag.eval.report import summary_markdown
    from mixrag.eval.runner import EvalConfig, evaluate

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # evaluate() writes the partial report, then we exit

    signal.signal(signal.SIGTERM, stop)

    mode_list = [] if modes.strip().lower() == "none" else _csv(modes, "--modes")
    config = EvalConfig(
        modes=tuple(mode_list),
        ks=_csv_ints(k, "-k"),
        limit=limit,
        seed=seed,
        method=method,
        retrieval=tuple(_csv(retrieval, "--retrieval")) if retrieval else (method,),
        recall_ks=_csv_ints(recall_k, "--recall-k"),
        batch_size=batch_size,
        posteriors=posteriors,
    )
    data = load_dataset(dataset, format=format)
    if build_index is not None:
        if index is not None and index.resolve() != build_index.resolve():
            raise MixragError(f"--index {index} and --build-index {build_index} differ; give one")
        from mixrag.cli.progress import IngestBar
        from mixrag.eval.corpus import index_dataset

        with IngestBar(progress) as ingest_bar:
            index = index_dataset(data, build_index, progress=ingest_bar)
    if index is None and store is None:
        raise MixragError("give --index (an index folder), --store or --build-index")
    from mixrag.index.opening import open_index
    from mixrag.rag import RAG, RAGConfig
    from mixrag.runs import load_run

    with open_index(_target(index, store)) as idx, EvalBar(progress) as bar:
        rag = None
        query_encoder = None
        if config.modes:
            rag_cfg = RAGConfig(k=max(config.ks), max_new_tokens=max_new_tokens)
            rag = RAG.open(
                idx,
                model=model,
                config=rag_cfg,
                method=method,
                tau=tau,
                generator_options=_generator_options(device, dtype, passage_cache_mb),
            )
        elif model is not None:  # retrieval only: a training run's q(x), no generator
            query_encoder = load_run(model, idx, with_generator=False).query_encoder
        results = evaluate(
            idx,
            data,
            config,
            out,
            rag,
            progress=bar,
            fresh=fresh,
            command="mixrag " + shlex.join(sys.argv[1:]),
            query_encoder=query_encoder,
        )
    if as_json:
        _echo_json({k: v for k, v in results.items() if k != "questions"})
    else:
        typer.echo(summary_markdown(results))
        typer.echo(f"report: {out}/summary.md, results.json, plots/")
    if "partial" in results:
        typer.echo("interrupted: run the same command to resume", err=True)
        raise typer.Exit(130)


@app.command("serve")
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
    k: Annotated[int, typer.Option("-k", help="Default K of requests that give none.")] = 5,
    method: Annotated[
        str, typer.Option(help="Default retrieval: dense, bm25 or hybrid.")
    ] = "dense",
    tau: TauOpt = None,
    max_k: Annotated[int, typer.Option(help="Largest K a request may ask for.")] = 20,
    max_question_chars: Annotated[int, typer.Option(help="Longest question accepted.")] = 2000,
    max_upload_mb: Annotated[float, typer.Option(help="Largest uploaded document, MB.")] = 10.0,
    max_waiting: Annotated[
        int, typer.Option(help="Asks queued for the generator before 503 Busy.")
    ] = 8,
    max_batch: Annotated[
        int, typer.Option(help="Most waiting asks answered together in one batch.")
    ] = 8,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    passage_cache_mb: CacheOpt = 2048,
) -> None:
    """Serve the index over HTTP: the JSON API (streaming answers) and a web page at /."""
    import uvicorn

    from mixrag.server import ServerConfig, create_app
    from mixrag.server.config import MiB, read_token_file
    from mixrag.store.postgres import redact

    target = _target(index, store)
    config = ServerConfig(
        index=target,
        model=model,
        host=host or "127.0.0.1",
        port=port,
        token=read_token_file(token_file) if token_file is not None else None,
        max_question_chars=max_question_chars,
        max_k=max_k,
        max_upload_bytes=int(max_upload_mb * MiB),
        max_waiting=max_waiting,
        max_batch=max_batch,
        mode=mode,
        k=k,
        method=method,
        tau=tau,
        **_generator_options(device, dtype, passage_cache_mb),
    )
    log = logging.getLogger("mixrag.server")
    if config.is_open:
        where = "this machine" if config.is_loopback else f"anyone who can reach {config.host}"
        log.warning(
            "no --token-file: the API is open to %s (read, upload and delete documents)", where
        )
    logging.getLogger("mixrag").setLevel(logging.INFO)
    application = create_app(config)
    where = redact(str(target)) if store is not None else str(target)
    typer.echo(f"mixrag: serving {where} on http://{config.host}:{config.port}/", err=True)
    uvicorn.run(
        application,
        host=config.host,
        port=config.port,
        timeout_graceful_shutdown=config.shutdown_timeout,
        log_level="info",
    )


@app.command("train")
def train_cmd(
    train: Annotated[
        Path, typer.Option(help="(question, answers) pairs: .jsonl, SQuAD .json[.gz], .tsv.")
    ],
    index: IndexOpt = None,
    store: StoreOpt = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder: checkpoint, history, loss.png.")
    ] = None,
    dev: Annotated[
        Path | None, typer.Option(help="Dev questions, evaluated each epoch or --eval-every.")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this folder.")] = None,
    mode: Annotated[
        str, typer.Option("--mode", "-m", help="rag-sequence or rag-token.")
    ] = TrainConfig.mode,
    k: Annotated[
        int, typer.Option("-k", help="Passages per question while training.")
    ] = TrainConfig.k,
    grad_passages: Annotated[
        int | None,
        typer.Option(
            help="Backpropagate the generator through the top N of the K passages only; "
            "the rest still count in -log p_RAG and in q(x)'s gradient [all K]."
        ),
    ] = TrainConfig.grad_passages,
    model: ModelOpt = None,
    epochs: Annotated[
        int, typer.Option(help="Passes over the training questions.")
    ] = TrainConfig.epochs,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many optimiser steps.")
    ] = TrainConfig.max_steps,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop (with a checkpoint) after this long.")
    ] = TrainConfig.max_minutes,
    lr: Annotated[float, typer.Option(help="Generator learning rate.")] = TrainConfig.lr,
    lr_retriever: Annotated[
        float, typer.Option(help="Query encoder learning rate.")
    ] = TrainConfig.lr_retriever,
    retriever_steps: Annotated[
        int | None,
        typer.Option(
            help="Train q(x) for the first N steps only (its rate decays to 0 there), "
            "then keep it fixed [whole run]."
        ),
    ] = TrainConfig.retriever_steps,
    retriever_patience: Annotated[
        int | None,
        typer.Option(
            help="Early-stop q(x) on --dev: after N evaluations (--eval-every) without a "
            "higher dev recall@k, back to its best weights, fixed from then on [off]."
        ),
    ] = TrainConfig.retriever_patience,
    batch_size: Annotated[
        int, typer.Option(help="Questions per forward/backward pass.")
    ] = TrainConfig.batch_size,
    grad_accum: Annotated[
        int, typer.Option(help="Passes per optimiser step.")
    ] = TrainConfig.grad_accum,
    freeze: Annotated[str, typer.Option(help="none, retriever or generator.")] = TrainConfig.freeze,
    update: Annotated[
        str, typer.Option(help="Generator update: lora or full.")
    ] = TrainConfig.generator_update,
    train_layers: Annotated[
        int | None, typer.Option(help="Train only the top N decoder layers.")
    ] = TrainConfig.train_layers,
    label_smoothing: Annotated[
        float, typer.Option(help="Label smoothing epsilon.")
    ] = TrainConfig.label_smoothing,
    autocast: Annotated[
        str,
        typer.Option(
            help="none, or bfloat16: the generator's forward/backward in bfloat16 "
            "(fast on CPUs with AMX / AVX512-BF16; weights stay float32)."
        ),
    ] = TrainConfig.autocast,
    query_dropout: Annotated[
        bool,
        typer.Option(help="Keep the query encoder's dropout on while training."),
    ] = TrainConfig.query_dropout,
    few_shot: Annotated[
        bool, typer.Option(help="Keep the few-shot examples in the prompts.")
    ] = TrainConfig.few_shot,
    tau: Annotated[
        float, typer.Option(help="Prior temperature: softmax(score / tau).")
    ] = TrainConfig.tau,
    eval_every: Annotated[
        int | None, typer.Option(help="Dev evaluation every N steps [each epoch].")
    ] = TrainConfig.eval_every,
    eval_limit: Annotated[
        int,
        typer.Option(
            help="Dev questions answered per evaluation (EM/F1); 0: recall only. "
            "Recall uses every dev question."
        ),
    ] = TrainConfig.eval_limit,
    checkpoint_every: Annotated[
        int, typer.Option(help="Steps between checkpoints.")
    ] = TrainConfig.checkpoint_every,
    seed: Annotated[int, typer.Option(help="Data order and initialisation.")] = TrainConfig.seed,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress")] = None,
    device: DeviceOpt = "cpu",
    dtype: Annotated[
        str,
        typer.Option(
            help="Generator weights dtype [float32]; on a CPU prefer float32 weights with "
            "--autocast bfloat16 (AdamW on bfloat16 weights loses small updates)."
        ),
    ] = "float32",
) -> None:
    """Train the query encoder and the generator jointly from (question, answer) pairs."""
    from mixrag.cli.progress import TrainBar
    from mixrag.eval.datasets import load_dataset
    from mixrag.index.opening import open_index
    from mixrag.train import load_pairs
    from mixrag.train.trainer import Trainer

    run = resume or out
    if run is None:
        raise MixragError("give --out (a new run folder) or --resume (an existing one)")
    if resume is not None and out is not None and out.resolve() != resume.resolve():
        raise MixragError(f"--out {out} and --resume {resume} differ; give one")
    config = TrainConfig(
        mode=mode,
        k=k,
        grad_passages=grad_passages,
        epochs=epochs,
        max_steps=max_steps,
        max_minutes=max_minutes,
        lr=lr,
        lr_retriever=lr_retriever,
        retriever_steps=retriever_steps,
        retriever_patience=retriever_patience,
        batch_size=batch_size,
        grad_accum=grad_accum,
        freeze=freeze,
        generator_update=update,
        train_layers=train_layers,
        label_smoothing=label_smoothing,
        autocast=autocast,
        query_dropout=query_dropout,
        few_shot=few_shot,
        tau=tau,
        eval_every=eval_every,
        eval_limit=eval_limit,
        checkpoint_every=checkpoint_every,
        seed=seed,
    )
    examples = load_pairs(train)
    dev_data = load_dataset(dev) if dev is not None else None
    options = _generator_options(device, dtype)
    generator = None
    if resume is None and options != {"device": "cpu", "dtype": "float32"}:
        from mixrag.generator.config import GeneratorConfig
        from mixrag.generator.hf import TransformersGenerator

        base = GeneratorConfig(model=model) if model else GeneratorConfig()
        generator = TransformersGenerator(dataclasses.replace(base, **options))
    with open_index(_target(index, store)) as idx:
        trainer = Trainer(
            idx, config, run, model=model, generator=generator, resume=resume is not None
        )
        with TrainBar(progress) as bar:
            history = trainer.train(examples, dev_data, progress=bar)
    last = history[-1] if history else {}
    typer.echo(
        f"step {trainer.step}/{trainer.total_steps}, loss {last.get('loss', float('nan')):.3f}; "
        f"checkpoint: {run}/checkpoint, curve: {run}/loss.png"
    )
    from mixrag.cli.format import dev_change

    dev_last = next((h for h in reversed(history) if h.get("dev")), None)
    if trainer.dev_start and dev_last:
        change = dev_change(trainer.dev_start, dev_last["dev"])
        typer.echo(f"dev, untrained -> step {dev_last['step']}: {change}")
    best = trainer.retriever_best
    if best and best.get("value") is not None:
        typer.echo(
            f"q(x) kept from step {best['step']} "
            f"(dev {best.get('metric', f'recall@{config.k}')} {best['value']:.3f})"
        )


@app.command("warm")
def warm_cmd(
    index: IndexOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    batch: Annotated[int, typer.Option(help="Passages per forward pass.")] = 16,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compute every passage's KV block once and keep it beside the index.

    Later questions then run only their own tokens per passage (ask, eval, serve read
    the blocks). Blocks are per model: a trained run or another model gets its own.
    """
    from mixrag.cli.progress import WarmBar
    from mixrag.generator.warming import warm_index
    from mixrag.index.folder import Index
    from mixrag.rag import RAG

    if index is None:
        raise MixragError("give --index: passage KV blocks are kept in an index folder")
    with Index.open(index) as idx, WarmBar(progress) as bar:
        rag = RAG.open(idx, model=model, generator_options=_generator_options(device, dtype))
        report = warm_index(idx, rag.generator, batch=batch, progress=bar)
    if as_json:
        _echo_json(report.to_dict())
        return
    mine = [u for u in report.usage if u.get("fingerprint") == rag.generator.weights_fingerprint()]
    per = mine[0]["bytes_per_passage"] if mine and mine[0]["bytes_per_passage"] else 0.0
    typer.echo(
        f"{report.passages} passages: {report.computed} computed in {report.seconds:.1f} s, "
        f"{report.passages - report.computed} already there; "
        f"{per / 2**20:.2f} MiB a passage on disk ({idx.passage_kv_path})"
    )


@app.command("split-squad")
def split_cmd(
    dataset: Annotated[Path, typer.Argument(help="A SQuAD v1.1 JSON file (.json or .json.gz).")],
    out: Annotated[Path, typer.Option(help="Folder for train.jsonl and dev.jsonl.")],
    dev_fraction: Annotated[float, typer.Option(help="Share of the articles for dev.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the article draw.")] = 0,
) -> None:
    """Split SQuAD by article: no dev question's article has a question in train."""
    from mixrag.train import split_by_article

    train, dev, counts = split_by_article(dataset, out, dev_fraction, seed)
    typer.echo(
        f"{train}: {counts['questions_train']} questions from {counts['articles_train']} articles\n"
        f"{dev}: {counts['questions_dev']} questions from {counts['articles_dev']} articles"
    )


@app.command("info")
def info_cmd(index: IndexOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Documents, passages, encoder, vector index kind and size on disk."""
    from mixrag.cli.format import info_text
    from mixrag.index.opening import open_index

    with open_index(_target(index, store)) as idx:
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
