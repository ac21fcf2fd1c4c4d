"""Warming an index: every passage's KV block computed ahead of the questions, on disk.

``mixrag warm`` calls :func:`warm_index`: it reads the index's passages in batches and
has the generator compute the blocks that are neither on disk nor in memory, writing
them into ``<index>/passage-kv/`` (:mod:`mixrag.generator.kv_store`). Interrupted, it
keeps what it wrote; run again, it computes only the rest. :func:`kv_coverage` says how
much of an index a generator finds on disk, so ``eval`` and ``serve`` can say when its
first questions will compute their passages (a trained run's blocks are its own).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mixrag.errors import MixragError
from mixrag.generator.config import GeneratorConfig
from mixrag.generator.hf import TransformersGenerator
from mixrag.generator.kv_store import KVStore


@dataclass(frozen=True)
class WarmReport:
    """passages: in the index; computed: blocks computed now (the rest were there; two
    blocks a passage with concat's);
    seconds: wall time; usage: the index's KV spaces after (``KVStore.usage``)."""

    passages: int
    computed: int
    seconds: float
    usage: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passages": self.passages,
            "computed": self.computed,
            "seconds": self.seconds,
            "usage": self.usage,
        }


def warm_index(
    index: Any,
    generator: TransformersGenerator,
    *,
    batch: int = 16,
    concat: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> WarmReport:
    """Compute and store the KV block of every passage of a folder ``index``.

    ``concat`` also stores each passage's block as concat's first passage
    (:meth:`TransformersGenerator.warm`). ``progress(done, total)`` is called after
    each batch.
    """
    path = getattr(index, "passage_kv_path", None)
    if path is None:
        raise MixragError("only an index folder keeps passage KV blocks; this index has no folder")
    if generator.passage_cache is None:
        raise MixragError("the passage cache is off (passage_cache_mb=0): nothing to warm")
    store = generator.kv_store or KVStore(path)
    generator.use_kv_store(store)
    total = int(index.store.counts()["passages"])
    done = computed = 0
    start = time.perf_counter()
    for passages in index.store.iter_passages(batch):
        computed += generator.warm(passages, batch=batch, concat=concat)
        # blocks just written are on disk: memory need not keep them
        if generator.passage_cache is not None:
            generator.passage_cache.clear()
        done += len(passages)
        if progress is not None:
            progress(done, total)
    return WarmReport(total, computed, time.perf_counter() - start, store.usage())


@dataclass(frozen=True)
class KVCoverage:
    """How warm an index is for one generator: its passages, and the blocks on disk in
    the generator's passage space (RAG-Sequence, RAG-Token, per-passage scoring) and
    concat-lead space (``mixrag warm --concat``)."""

    passages: int
    passage_blocks: int
    concat_blocks: int

    @property
    def cold(self) -> int:
        """Passages whose prompt block is not on disk: computed when first retrieved."""
        return max(0, self.passages - self.passage_blocks)

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "cold": self.cold}


def kv_coverage(index: Any, store: KVStore | None, spaces: dict[str, str]) -> KVCoverage | None:
    """The blocks ``store`` holds in ``spaces`` (``TransformersGenerator.kv_spaces``) for
    ``index``'s passages; None without a store. Counts files: no generator call, so a
    server may ask while its engine decodes."""
    if store is None:
        return None
    total = int(index.store.counts()["passages"])
    return KVCoverage(
        total,
        min(total, store.count(spaces["passage"])),
        min(total, store.count(spaces["concat"])),
    )


def cold_hint(
    coverage: KVCoverage | None, index_path: Path | str, model: str | None, config: GeneratorConfig
) -> str | None:
    """One line for a user whose index is not warm for this generator; None when it is."""
    if coverage is None or coverage.cold == 0:
        return None
    command = f"mixrag warm --index {shlex.quote(str(index_path))}"
    if model:
        command += f" --model {shlex.quote(model)}"
    if config.device != "cpu":
        command += f" --device {config.device}"
    if config.dtype != "float32":
        command += f" --dtype {config.dtype}"
    return (
        f"{coverage.cold} of {coverage.passages} passages have no KV block on disk for this "
        f"generator: a question computes (and keeps) its cold passages' blocks before it "
        f"answers; `{command}` computes them all ahead"
    )
