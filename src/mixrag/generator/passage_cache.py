"""The passage KV cache: a passage's keys and values, computed once, reused by every question.

In RAG-Sequence and RAG-Token every prompt holds one passage, placed before the
question (``generator.prompts``), so the keys and values of ``[head + passage]``
depend only on the generator's weights, the prompt format and the passage, never on
the question x. Computed once, they let every later question that retrieves the
passage run only its own ~25 tokens (question, turn markers, answer). Same token ids,
same positions, same attention: the result equals a full forward pass (up to float
rounding, checked to 1e-4 in tests/generator/test_passage_cache.py).

An entry is keyed by :func:`entry_key`: a fingerprint of the weights
(:class:`WeightsFingerprint`, which changes when any parameter does, a LoRA adapter
included), the head's token ids (the prompt format) and the passage's token ids.
A stale entry therefore can never be found. Entries hold the passage block only
(``[layers, 2, heads, S, d]``, keys then values); the head's KV is kept once by the
generator. The cache is an LRU bounded by bytes.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

DEFAULT_MAX_BYTES = 2 * 2**30


def entry_key(fingerprint: str, head: Sequence[int], passage: Sequence[int]) -> str:
    """The cache key of a passage block: hex sha256 of (weights, head ids, passage ids)."""
    h = hashlib.sha256(fingerprint.encode())
    h.update(b"|head|")
    h.update(torch.tensor(list(head), dtype=torch.int64).numpy().tobytes())
    h.update(b"|passage|")
    h.update(torch.tensor(list(passage), dtype=torch.int64).numpy().tobytes())
    return h.hexdigest()


class WeightsFingerprint:
    """A content hash of a model's parameters and buffers, recomputed when any changes.

    The hash (sha256 over every tensor's name, dtype, shape and bytes, and the model
    config) costs about 1.6 s for Qwen2.5-0.5B in float32 (Xeon, 2 cores), so it is
    computed on first use and then only when a parameter's in-place version counter
    moves (an optimizer step, ``load_state_dict``, merging an adapter) or the set of
    parameters changes (an adapter added): checking that costs microseconds.
    """

    def __init__(self, model: Any) -> None:
        self._model = model
        self._stamp: tuple[tuple[int, int], ...] | None = None
        self._value = ""
        self._lock = threading.Lock()

    def stamp(self) -> tuple[tuple[int, int], ...]:
        """Cheap: changes whenever a parameter is modified in place, added or replaced."""
        return tuple((id(p), p._version) for p in self._model.parameters())

    def __call__(self) -> str:
        with self._lock:
            stamp = self.stamp()
            if stamp != self._stamp:
                self._value = weights_hash(self._model)
                self._stamp = stamp
            return self._value


def weights_hash(model: Any) -> str:
    """Hex sha256 of a model's config and every parameter and buffer (name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_json_string"):
        h.update(config.to_json_string(use_diff=False).encode())
    tensors = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    with torch.no_grad():
        for name in sorted(tensors):
            t = tensors[name].detach()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            if t.numel():
                data = t.to("cpu").contiguous().reshape(-1).view(torch.uint8)
                h.update(memoryview(data.numpy()))
    return h.hexdigest()


@dataclass(frozen=True)
class CacheStats:
    """What a cache holds and how it has been used since it was made."""

    entries: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int

    def to_dict(self) -> dict[str, int]:
        return {
            "entries": self.entries,
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
        }


class PassageCache:
    """An LRU of passage blocks ``[layers, 2, heads, S, d]``, bounded by ``max_bytes``.

    ``max_bytes = 0`` keeps nothing (every lookup misses). An entry larger than the
    whole budget is not kept. Thread-safe; entries are never modified after ``put``.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._hits = self._misses = self._evictions = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: str) -> torch.Tensor | None:
        """The block for ``key`` (now the most recently used), or None."""
        with self._lock:
            block = self._entries.get(key)
            if block is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return block

    def put(self, key: str, block: torch.Tensor) -> None:
        """Keep ``block`` under ``key``, evicting the least recently used beyond the budget."""
        size = block.numel() * block.element_size()
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.numel() * old.element_size()
            if size > self.max_bytes:
                return
            self._entries[key] = block
            self._bytes += size
            while self._bytes > self.max_bytes:
                _key, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.numel() * dropped.element_size()
                self._evictions += 1

    def discard(self, keys: Sequence[str]) -> int:
        """Drop the entries of ``keys``; returns how many there were."""
        n = 0
        with self._lock:
            for key in keys:
                block = self._entries.pop(key, None)
                if block is not None:
                    self._bytes -= block.numel() * block.element_size()
                    n += 1
        return n

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                len(self._entries),
                self._bytes,
                self.max_bytes,
                self._hits,
                self._misses,
                self._evictions,
            )
