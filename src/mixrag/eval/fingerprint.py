"""What makes an evaluation's stored records valid: the fingerprint of its inputs.

``mixrag eval`` keeps every finished (run, question) record in the report folder's
``cache.sqlite`` beside this fingerprint; a resumed run reuses the records only when the
fingerprint is the same (:func:`mixrag.eval.runner.run_evaluation`), so a report never
mixes two datasets, indexes, generators or trained models.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import TYPE_CHECKING, Any

from mixrag.answer import MODES
from mixrag.eval.config import EvalConfig
from mixrag.eval.datasets import Dataset

if TYPE_CHECKING:
    from mixrag.encoders.base import Encoder
    from mixrag.index.opening import AnyIndex
    from mixrag.rag import RAG


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(
    index: AnyIndex,
    dataset: Dataset,
    config: EvalConfig,
    rag: RAG | None,
    query_encoder: Encoder | None = None,
) -> dict:
    """What makes a stored per-question record valid: inputs and answer-changing settings.

    A trained q(x) adds the fingerprint of its weights, trained models the checkpoint
    they come from (``RAG.origin``), so a report folder never mixes an untrained and a
    trained model's records. Not in it: modes, ks, limit, seed, batch sizes (records are
    per run and question, and batching does not change an answer beyond float rounding).
    """
    info = index.info()
    fp: dict[str, Any] = {
        "dataset": {"sha256": _file_sha256(dataset.path), "format": dataset.format},
        "index": {
            "encoder": info.get("encoder", {}).get("fingerprint"),
            "passages": info.get("passages"),
            "generation": info.get("vector_index", {}).get("generation"),
        },
        "retrieval_depth": max(config.recall_ks),
    }
    if config.unanswerable:  # the split decides which records are answerable
        fp["unanswerable"] = {"share": config.unanswerable, "seed": config.seed}
    if query_encoder is not None:
        fp["query_encoder"] = getattr(query_encoder, "fingerprint", type(query_encoder).__name__)
    if rag is not None:
        gen = generator_record(rag)
        # what changes speed or memory only, not the numbers
        for batching in (
            "max_batch_tokens",
            "max_batch_rows",
            "max_logit_bytes",
            "cache_dir",
            "passage_cache_mb",
            "packed_weights",  # the same kernels: bfloat16 rounding at most (packed_linear)
        ):
            gen.pop(batching, None)
        if gen.get("passage_cache_dtype") is None:
            gen.pop("passage_cache_dtype", None)
        rc = dataclasses.asdict(rag.config)
        for summary_only in ("mode", "k", "min_confidence", "min_gain", "min_relevance"):
            rc.pop(summary_only, None)
        if not rc.get("alternatives"):  # records without them: as before the option
            rc.pop("alternatives", None)
        if rc.get("allow_echo"):  # the rule off: answers as before the rule existed
            rc.pop("allow_echo", None)
        if rc["num_beams"] is None:  # each mode's default width, as this backend decodes
            rc["num_beams"] = {
                mode: rag.beams(dataclasses.replace(rag.config, mode=mode)) for mode in MODES
            }
        fp["generator"] = gen
        fp["answering"] = {
            **rc,
            "method": config.method,
            "tau": rag.retriever.config.tau,
            "posteriors": config.posteriors,
        }
        if rag.origin is not None:
            fp["trained"] = rag.origin
    return fp


def generator_record(rag: RAG) -> dict[str, Any]:
    """The generator's config, with the server that ran it where one did."""
    record = rag.generator.config.to_dict()
    remote = getattr(rag.generator, "remote", None)
    if remote is not None:
        record["server"] = remote.to_dict()
    return record
