"""The encoder protocol: texts to L2-normalised float32 vectors."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """d(z) and q(x) of the bi-encoder (one model for both, as all-MiniLM-L6-v2 is symmetric)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """[N, D] float32, each row L2-normalised, so d(z)ᵀq(x) is a cosine."""
        ...


def passage_input(title: str, text: str) -> str:
    """What the encoder reads for a passage: its title, then its text (as DPR and the paper do)."""
    return f"{title}\n{text}" if title else text


def weights_fingerprint(module: Any) -> str:
    """sha256 over a torch module's state (names, shapes, bytes), 16 hex digits."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
