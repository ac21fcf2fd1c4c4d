"""Passage encoding spread over a Ray cluster: Ray Data ``map_batches`` on an actor pool.

``pip install mixrag[ray]``. Nothing here imports Ray until :meth:`RayEncoder.encode`
runs, and nothing else in mixrag imports this module unless ``--ray`` is given.

Each actor loads the encoder once (the same model as the index's, checked by weight
fingerprint on the worker) and encodes the batches Ray Data hands it. Passages are
numbered on the way in; the vectors are put back in that order on the way out, and the
count in must equal the count out, so nothing is dropped silently. A worker that dies
is restarted and its batch retried (Ray Data's actor-pool policy: restarts and task
retries without limit); an error raised by the encoder itself fails the job, and the
ingest then commits nothing of the group in flight.

The vectors equal single-process ones up to float rounding, not bit for bit: the
sentence-transformers encoder sorts each call's texts by length and pads per batch, so
a passage may be padded differently on a worker. The difference is measured in
docs/BENCHMARKS.md (max |Δ| ~1e-7 on unit vectors) and changes no ranking there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mixrag.encoders.config import EncoderConfig
from mixrag.encoders.sentence import SentenceTransformerEncoder
from mixrag.errors import MissingDependencyError, MixragError, ModelLoadError

log = logging.getLogger(__name__)

#: Set to a file path to make the first encoder actor that finds the file missing
#: create it and exit abruptly: a worker crash on demand, for the retry test.
CRASH_ONCE_ENV = "MIXRAG_RAY_CRASH_ONCE"


@dataclass(frozen=True)
class RayEncoderConfig:
    """Where and how wide the encoding runs.

    address: ``auto`` (the cluster this machine belongs to, as ``ray start`` made it),
        ``ray://host:port`` (a remote cluster through Ray Client), or ``local`` (start a
        private one-machine cluster on loopback for this process).
    workers: encoder actors (each holds one copy of the model).
    cpus_per_worker: CPUs Ray reserves per actor; torch in the actor uses that many
        threads (at least one).
    batch_size: passages per actor call.
    chunk: passages per Ray Data job, i.e. per ``encode`` call of the ingest pipeline
        (each job starts its actors and loads the model in each, about 8 s on the
        standard box; larger chunks amortise that); 0 = automatic, 8,192 per worker and
        at least 16,384.
    """

    address: str = "auto"
    workers: int = 2
    cpus_per_worker: float = 1.0
    batch_size: int = 256
    chunk: int = 0

    def __post_init__(self) -> None:
        if not (self.address in ("auto", "local") or self.address.startswith(("ray://", "ray:"))):
            raise MixragError(f"--ray must be auto, local or ray://host:port, got {self.address!r}")
        if self.chunk < 0:
            raise MixragError(f"ray chunk must be >= 1, or 0 for automatic, got {self.chunk}")
        for name in ("workers", "batch_size"):
            if getattr(self, name) < 1:
                raise MixragError(f"ray {name} must be >= 1, got {getattr(self, name)}")
        if self.cpus_per_worker <= 0:
            raise MixragError(f"ray cpus_per_worker must be > 0, got {self.cpus_per_worker}")


class _EncodeActor:
    """One Ray actor: loads the encoder once, then encodes batches of {i, text}."""

    def __init__(
        self,
        encoder: dict[str, Any],
        fingerprint: str,
        threads: int,
        crash_once: str | None,
    ) -> None:
        import torch

        torch.set_num_threads(threads)
        self.encoder = SentenceTransformerEncoder(EncoderConfig(**encoder))
        if self.encoder.fingerprint != fingerprint:
            raise ModelLoadError(
                f"encoder {encoder['model']!r} on this Ray worker has weights "
                f"{self.encoder.fingerprint}, the index needs {fingerprint}"
            )
        self.crash_once = crash_once

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.crash_once and not os.path.exists(self.crash_once):
            open(self.crash_once, "w").close()
            os._exit(1)  # a worker dying mid-batch, as a killed machine would
        vectors = self.encoder.encode([str(t) for t in batch["text"]])
        return {"i": np.asarray(batch["i"], dtype=np.int64), "vector": vectors}


class RayEncoder(SentenceTransformerEncoder):
    """The index's encoder, with :meth:`encode` run on a Ray cluster.

    Tokenising (to fit passages to the model) stays in this process with the local
    copy of the model; only the forward passes go to the cluster.
    """

    def __init__(self, local: SentenceTransformerEncoder, config: RayEncoderConfig) -> None:
        super().__init__(local.config)
        self._model = local.load()
        self._fingerprint = local.fingerprint
        self.ray_config = config
        self.chunk_size = config.chunk or max(16_384, 8_192 * config.workers)
        self._started = False

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise MissingDependencyError(
                "--ray needs Ray Data: pip install 'mixrag[ray]'"
            ) from None
        if not ray.is_initialized():
            cfg = self.ray_config
            common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if cfg.address == "local":
                ray.init(
                    num_cpus=max(1, round(cfg.workers * cfg.cpus_per_worker)),
                    _node_ip_address="127.0.0.1",
                    **common,
                )
            else:
                try:
                    ray.init(address=cfg.address, **common)
                except ConnectionError as e:
                    raise MixragError(
                        f"no Ray cluster at {cfg.address!r} ({e}); start one with "
                        "`ray start --head` or use --ray local"
                    ) from None
            self._started = True
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False
            ctx.print_on_execution_start = False
        return ray

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[N, D] float32, L2-normalised rows, in the order of ``texts``."""
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        ray = self._ray()
        cfg = self.ray_config
        items = [{"i": i, "text": t} for i, t in enumerate(texts)]
        blocks = max(1, min(n // cfg.batch_size + 1, 4 * cfg.workers))
        dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            _EncodeActor,
            fn_constructor_kwargs={
                "encoder": {
                    "model": self.config.model,
                    "batch_size": self.config.batch_size,
                    "max_tokens": self.config.max_tokens,
                },
                "fingerprint": self.fingerprint,
                "threads": max(1, int(cfg.cpus_per_worker)),
                "crash_once": os.environ.get(CRASH_ONCE_ENV),
            },
            batch_size=cfg.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=cfg.workers),
            num_cpus=cfg.cpus_per_worker,
        )
        out = np.empty((n, self.dim), dtype=np.float32)
        seen = np.zeros(n, dtype=bool)
        for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
            ids = np.asarray(batch["i"], dtype=np.int64)
            if len(ids) and (seen[ids].any() or ids.min() < 0 or ids.max() >= n):
                raise MixragError("Ray returned a passage twice or one it was not given")
            out[ids] = np.asarray(batch["vector"], dtype=np.float32).reshape(len(ids), -1)
            seen[ids] = True
        if not seen.all():
            raise MixragError(
                f"Ray encoded {int(seen.sum())} of {n} passages; refusing to write a partial group"
            )
        return out

    def close(self) -> None:
        """Shut down the cluster connection this encoder started (a local cluster stops)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
