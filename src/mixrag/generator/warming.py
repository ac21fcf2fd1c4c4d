"""Warming an index: every passage's KV block computed ahead of the questions, on disk.

``mixrag warm`` calls :func:`warm_index`: it reads the index's passages in batches and
has the generator compute the blocks that are neither on disk nor in memory, writing
them into ``<index>/passage-kv/`` (:mod:`mixrag.generator.kv_store`). Interrupted, it
keeps what it wrote; run again, it computes only the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mixrag.errors import MixragError
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
