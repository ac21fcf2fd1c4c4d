"""Passage KV blocks on disk, beside an index, so a served corpus is warm from the start.

Layout (``<index>/passage-kv/``)::

    <space>/manifest.json              model, weights fingerprint, head length, dtype, shape
    <space>/<passage id>.safetensors   one block [layers, 2, heads, S, d], its cache key inside

A *space* is one (weights, prompt head) pair: ``sha256(fingerprint | head ids)[:16]``.
Another model, a trained checkpoint or another prompt format lands in another space and
never reads this one's files; a file is used only if the key stored in it equals the
key the generator asks for (weights, head and passage token ids), so a stale block is
never used. Files are written under a temporary name, fsynced and renamed into place:
a crash leaves either the old state or the new block, never half of one. When a
document leaves the index (or changes), :meth:`KVStore.prune` deletes the blocks of
passages that are no longer in it.

safetensors is the format because it is what transformers stores weights in (already a
dependency), loads without pickle, and keeps bfloat16.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from mixrag.atomic import atomic_path, atomic_write_json

logger = logging.getLogger(__name__)

SUFFIX = ".safetensors"
MANIFEST = "manifest.json"


def space_name(fingerprint: str, head: Sequence[int]) -> str:
    """The folder of one (weights, prompt head) pair."""
    h = hashlib.sha256(fingerprint.encode())
    h.update(b"|")
    h.update(",".join(str(int(t)) for t in head).encode())
    return h.hexdigest()[:16]


class KVStore:
    """Passage blocks under ``root``, one file per (space, passage id).

    ``writable=False`` only reads. A write that fails (read-only folder, full disk) is
    logged once and turns writing off; answering never fails because of the store.
    """

    def __init__(self, root: str | Path, *, writable: bool = True) -> None:
        self.root = Path(root)
        self.writable = writable
        self._lock = threading.Lock()
        self._spaces: set[str] = set()

    def _path(self, space: str, passage_id: str) -> Path:
        if not passage_id or "/" in passage_id or passage_id.startswith("."):
            raise ValueError(f"passage id {passage_id!r} cannot name a file")
        return self.root / space / f"{passage_id}{SUFFIX}"

    def has(self, space: str, passage_id: str) -> bool:
        return self._path(space, passage_id).is_file()

    def load(self, space: str, passage_id: str, key: str) -> torch.Tensor | None:
        """The stored block of ``passage_id`` if its key is ``key``; None otherwise."""
        from safetensors import safe_open

        path = self._path(space, passage_id)
        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("key") != key:
                    return None
                return f.get_tensor("kv")
        except FileNotFoundError:
            return None
        except Exception as exc:  # a damaged file is a miss, and is replaced on the next save
            logger.warning("ignoring unreadable passage KV file %s: %s", path, exc)
            return None

    def save(
        self,
        space: str,
        passage_id: str,
        key: str,
        block: torch.Tensor,
        manifest: dict[str, Any],
    ) -> None:
        """Write one block atomically (and the space's manifest the first time)."""
        if not self.writable:
            return
        from safetensors.torch import save_file

        path = self._path(space, passage_id)
        try:
            with self._lock:
                if space not in self._spaces:
                    self._write_manifest(space, manifest)
                    self._spaces.add(space)
            with atomic_path(path) as tmp:
                save_file({"kv": block.detach().to("cpu").contiguous()}, str(tmp), {"key": key})
        except FileNotFoundError:
            # the space was pruned meanwhile (its passages left the index): nothing to keep
            logger.debug("passage KV block %s not kept: its folder went away", path)
        except OSError as exc:
            logger.warning("passage KV store %s is not writable (%s): reading only", self.root, exc)
            self.writable = False

    def _write_manifest(self, space: str, manifest: dict[str, Any]) -> None:
        folder = self.root / space
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MANIFEST
        if path.exists():
            return
        data = {**manifest, "space": space, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
        atomic_write_json(path, data)

    def count(self, space: str) -> int:
        """Blocks stored in ``space`` (0 for a space not on disk)."""
        try:
            with os.scandir(self.root / space) as entries:
                return sum(1 for e in entries if e.name.endswith(SUFFIX))
        except FileNotFoundError:
            return 0

    def spaces(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def prune(self, live_ids: Iterable[str], tmp_age_s: float = 3600.0) -> int:
        """Delete blocks of passages not in ``live_ids``; how many.

        Temp files of crashed writes go too, once older than ``tmp_age_s`` (a younger
        one may be a write in progress in another thread or process).
        """
        live = set(live_ids)
        removed = 0
        now = time.time()
        for space in self.spaces():
            for path in (self.root / space).iterdir():
                name = path.name
                dead = name.endswith(SUFFIX) and name[: -len(SUFFIX)] not in live
                try:
                    stale_tmp = (
                        name.startswith(".")
                        and name.endswith(".tmp")
                        and now - path.stat().st_mtime > tmp_age_s
                    )
                except FileNotFoundError:  # a write just renamed it into place
                    continue
                if stale_tmp or dead:
                    path.unlink(missing_ok=True)
                    removed += dead
        return removed

    def usage(self) -> list[dict[str, Any]]:
        """Per space: its manifest (model, dtype, ...), blocks, bytes, bytes per block."""
        out = []
        for space in self.spaces():
            folder = self.root / space
            sizes = [p.stat().st_size for p in folder.glob(f"*{SUFFIX}")]
            try:
                manifest = json.loads((folder / MANIFEST).read_text())
            except (OSError, ValueError):
                manifest = {"space": space}
            out.append(
                {
                    **manifest,
                    "blocks": len(sizes),
                    "bytes": sum(sizes),
                    "bytes_per_passage": sum(sizes) / len(sizes) if sizes else None,
                }
            )
        return out
