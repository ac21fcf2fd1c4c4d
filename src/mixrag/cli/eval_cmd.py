"""``mixrag eval``: retrieval and answer quality on a question set, as a report folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mixrag.cli.options import (
    AllowEchoOpt,
    BeamsOpt,
    Bm25WeightOpt,
    CacheOpt,
    DeviceOpt,
    DtypeOpt,
    GeneratorKeyOpt,
    GeneratorUrlOpt,
    IndexOpt,
    JsonOpt,
    MinRelevanceOpt,
    ModelOpt,
    ProgressOpt,
    ServedModelOpt,
    StoreOpt,
    TauOpt,
    echo_json,
    generator_options,
    relevance_threshold,
    remote_config,
    target,
)
from mixrag.errors import MixragError
from mixrag.support import DEFAULT_MIN_RELEVANCE

if TYPE_CHECKING:
    from mixrag.index.opening import AnyIndex
    from mixrag.rag import RAG


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


def _note_cold(idx: AnyIndex, rag: RAG, model: str | None, location: Path | str) -> None:
    """Say when the generator will compute passage blocks during the run (a trained
    run's first evaluation computes every block it meets: its weights are its own)."""
    from mixrag.generator.hf import TransformersGenerator
    from mixrag.generator.warming import cold_hint, kv_coverage

    gen = rag.generator
    if not isinstance(gen, TransformersGenerator) or gen.kv_store is None:
        return
    coverage = kv_coverage(idx, gen.kv_store, gen.kv_spaces())
    hint = cold_hint(coverage, location, model, gen.config)
    if hint is not None:
        typer.echo(f"note: {hint}", err=True)


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
    k: Annotated[
        str | None,
        typer.Option(
            "-k",
            help="Passages K per answer; several: 1,5,10 "
            "\\[each mode's measured best: 5, concat 3].",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Seeded sample of this many questions.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --limit sample.")] = 0,
    method: Annotated[str, typer.Option(help="Retrieval feeding the generator.")] = "combined",
    retrieval: Annotated[
        str | None,
        typer.Option(help="Retrieval methods to measure, e.g. dense,bm25,hybrid [--method]."),
    ] = None,
    recall_k: Annotated[str, typer.Option(help="k of recall@k and answer-in-top-k.")] = "1,5,20",
    model: ModelOpt = None,
    tau: TauOpt = None,
    bm25_weight: Bm25WeightOpt = None,
    batch_size: Annotated[int, typer.Option(help="Questions answered per batch.")] = 8,
    max_new_tokens: Annotated[int, typer.Option(help="Answer length limit in tokens.")] = 32,
    posteriors: Annotated[
        bool, typer.Option(help="Also score concat / closed-book answers per passage.")
    ] = False,
    unanswerable: Annotated[
        float,
        typer.Option(
            help="Share of the questions made unanswerable: --build-index leaves their "
            "SQuAD articles out (seeded by --seed); reports abstention and risk-coverage."
        ),
    ] = 0.0,
    min_confidence: Annotated[
        float | None,
        typer.Option(help="Threshold on p(y|x) the abstention rates are taken at [default]."),
    ] = None,
    min_relevance: MinRelevanceOpt = str(DEFAULT_MIN_RELEVANCE),
    attribution: Annotated[
        bool,
        typer.Option(
            help="Also name each answer's sources four ways (posterior, prompted [n], "
            "leave-one-out, rank) and measure them against the gold passages."
        ),
    ] = False,
    alternatives: Annotated[
        int,
        typer.Option(
            help="Keep up to this many other answers each run ranked below its answer, "
            "with log p(y'|x) and EM, in the records (RAG-Sequence: its union)."
        ),
    ] = 0,
    allow_echo: AllowEchoOpt = False,
    beams: BeamsOpt = None,
    fresh: Annotated[bool, typer.Option(help="Discard results the --out folder holds.")] = False,
    format: Annotated[
        str | None, typer.Option(help="Dataset format: squad, jsonl or nq-tsv [by extension].")
    ] = None,
    progress: ProgressOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    passage_cache_mb: CacheOpt = 2048,
    generator_url: GeneratorUrlOpt = None,
    generator_api_key: GeneratorKeyOpt = None,
    served_model: ServedModelOpt = None,
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
    from mixrag.support import DEFAULT_MIN_CONFIDENCE

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # evaluate() writes the partial report, then we exit

    signal.signal(signal.SIGTERM, stop)

    remote = remote_config(generator_url, generator_api_key, served_model)
    mode_list = [] if modes.strip().lower() == "none" else _csv(modes, "--modes")
    config = EvalConfig(
        modes=tuple(mode_list),
        ks=_csv_ints(k, "-k") if k is not None else (),
        limit=limit,
        seed=seed,
        method=method,
        retrieval=tuple(_csv(retrieval, "--retrieval")) if retrieval else (method,),
        recall_ks=_csv_ints(recall_k, "--recall-k"),
        batch_size=batch_size,
        posteriors=posteriors,
        unanswerable=unanswerable,
        min_confidence=DEFAULT_MIN_CONFIDENCE if min_confidence is None else min_confidence,
        min_relevance=relevance_threshold(min_relevance),
        attribution=attribution,
    )
    data = load_dataset(dataset, format=format)
    if unanswerable and build_index is None:
        raise MixragError("--unanswerable needs --build-index: the index is built without them")
    if build_index is not None:
        if index is not None and index.resolve() != build_index.resolve():
            raise MixragError(f"--index {index} and --build-index {build_index} differ; give one")
        from mixrag.cli.progress import IngestBar
        from mixrag.eval.corpus import index_dataset
        from mixrag.eval.datasets import sample
        from mixrag.eval.unanswerable import held_out_articles

        # the same sample run_evaluation draws, so the split is the one it marks
        questions = sample(data.questions, config.limit, seed=config.seed)
        held = held_out_articles(questions, config.unanswerable, config.seed)
        with IngestBar(progress) as ingest_bar:
            index = index_dataset(data, build_index, progress=ingest_bar, held_out=held)
    if index is None and store is None:
        raise MixragError("give --index (an index folder), --store or --build-index")
    from mixrag.index.opening import open_index
    from mixrag.rag import RAG, RAGConfig
    from mixrag.runs import load_run

    with open_index(target(index, store)) as idx, EvalBar(progress) as bar:
        rag = None
        query_encoder = None
        if config.modes:
            rag_cfg = RAGConfig(
                k=config.depth,
                max_new_tokens=max_new_tokens,
                min_confidence=config.min_confidence,
                min_relevance=config.min_relevance,
                alternatives=alternatives,
                allow_echo=allow_echo,
                num_beams=beams,
            )
            weight: dict[str, Any] = {} if bm25_weight is None else {"bm25_weight": bm25_weight}
            rag = RAG.open(
                idx,
                model=model,
                config=rag_cfg,
                method=method,
                tau=tau,
                **weight,
                generator_options=generator_options(device, dtype, passage_cache_mb),
                remote=remote,
            )
            if set(config.modes) - {"closed-book"} or posteriors:
                _note_cold(idx, rag, model, target(index, store))
        elif model is not None:  # retrieval only: a training run's q(x) and w, no generator
            run = load_run(model, idx, with_generator=False)
            query_encoder = run.query_encoder
            bm25_weight = run.bm25_weight if bm25_weight is None else bm25_weight
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
            bm25_weight=bm25_weight,
        )
    if as_json:
        echo_json({k: v for k, v in results.items() if k != "questions"})
    else:
        typer.echo(summary_markdown(results))
        typer.echo(f"report: {out}/summary.md, results.json, plots/")
    if "partial" in results:
        typer.echo("interrupted: run the same command to resume", err=True)
        raise typer.Exit(130)
