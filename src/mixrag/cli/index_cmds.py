"""``mixrag index``, ``rm``, ``info`` and ``warm``: build, shrink, describe and warm an index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mixrag.cli.options import (
    DeviceOpt,
    DtypeOpt,
    IndexOpt,
    JsonOpt,
    ModelOpt,
    ProgressOpt,
    StoreOpt,
    echo_json,
    generator_options,
    target,
)
from mixrag.errors import MixragError


def index_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively).")],
    index: IndexOpt = None,
    store: StoreOpt = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Encode on a Ray cluster: auto (the running one), ray://host:port, or "
            "local (start one here). Needs mixrag\\[ray].",
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
    progress: ProgressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add files to an index (created if missing); unchanged files are not re-encoded.

    Vector-index options given for an existing index replace its settings; a change of
    structure (kind, nlist, pq-m, train-size) rebuilds it from the stored vectors.
    """
    from mixrag.cli.format import report_text
    from mixrag.cli.progress import IngestBar
    from mixrag.index.opening import open_or_create

    where = target(index, store)
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
    idx = open_or_create(  # a different chunking or encoder is refused
        where,
        chunking={k: v for k, v in chunk_opts.items() if v is not None},
        encoder={"model": encoder} if encoder is not None else {},
        vectors={k: v for k, v in vector_opts.items() if v is not None},
    )
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
        echo_json(report.to_dict())
    else:
        typer.echo(report_text(report))
    if not report.ok:
        raise typer.Exit(1)


def rm_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Indexed files or folders to remove.")],
    index: IndexOpt = None,
    store: StoreOpt = None,
) -> None:
    """Remove documents (by their source file or folder) from an index."""
    from mixrag.index.opening import open_index

    with open_index(target(index, store)) as idx:
        removed = idx.remove([str(p) for p in paths])
    typer.echo(f"removed {len(removed)} file(s): " + ", ".join(removed))


def warm_cmd(
    index: IndexOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    batch: Annotated[int, typer.Option(help="Passages per forward pass.")] = 16,
    concat: Annotated[
        bool,
        typer.Option(
            "--concat/--no-concat",
            help="Also compute each passage's block as concat's first passage "
            "(a second block a passage, read by concat asks that rank it first).",
        ),
    ] = False,
    progress: ProgressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compute every passage's KV block once and keep it beside the index.

    Later questions then run only their own tokens per passage (ask, eval, serve read
    the blocks). Blocks are per model: a trained run or another model gets its own.
    """
    from mixrag.cli.progress import WarmBar
    from mixrag.generator.hf import TransformersGenerator
    from mixrag.generator.warming import warm_index
    from mixrag.index.folder import Index
    from mixrag.rag import RAG

    if index is None:
        raise MixragError("give --index: passage KV blocks are kept in an index folder")
    with Index.open(index) as idx, WarmBar(progress) as bar:
        rag = RAG.open(idx, model=model, generator_options=generator_options(device, dtype))
        generator = rag.generator
        assert isinstance(generator, TransformersGenerator)  # no remote= given
        report = warm_index(idx, generator, batch=batch, concat=concat, progress=bar)
        spaces = generator.kv_spaces()
    if as_json:
        echo_json({**report.to_dict(), "spaces": spaces})
        return
    wanted = ["passage", "concat"] if concat else ["passage"]
    blocks = report.passages * len(wanted)
    typer.echo(
        f"{report.passages} passages: {report.computed} blocks computed in "
        f"{report.seconds:.1f} s, {blocks - report.computed} already there "
        f"({idx.passage_kv_path})"
    )
    usage = {u.get("space"): u for u in report.usage}
    for kind in wanted:
        u = usage.get(spaces[kind], {})
        per = u.get("bytes_per_passage") or 0.0
        typer.echo(f"  {kind} prompt: {u.get('blocks', 0)} blocks, {per / 2**20:.2f} MiB a passage")


def info_cmd(index: IndexOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Documents, passages, encoder, vector index kind and size on disk."""
    from mixrag.cli.format import info_text
    from mixrag.index.opening import open_index

    with open_index(target(index, store)) as idx:
        info = idx.info()
    typer.echo(json.dumps(info, indent=2) if as_json else info_text(info))
