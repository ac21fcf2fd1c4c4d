"""Encoder configuration (its own module so configs import no model code)."""

from __future__ import annotations

from dataclasses import dataclass

from mixrag.errors import MixragError

DEFAULT_ENCODER = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class EncoderConfig:
    """The dense bi-encoder d(z), q(x).

    model: a bundled name (``all-MiniLM-L6-v2``), a sentence-transformers folder,
        or a hub name (needs network).
    batch_size: texts per forward pass.
    max_tokens: longest input the encoder reads; 0 means the model's own limit.
    """

    model: str = DEFAULT_ENCODER
    batch_size: int = 32
    max_tokens: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise MixragError(f"encoder batch_size must be >= 1, got {self.batch_size}")
        if self.max_tokens < 0:
            raise MixragError(f"encoder max_tokens must be >= 0, got {self.max_tokens}")
