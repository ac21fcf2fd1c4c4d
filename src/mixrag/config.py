"""Config plumbing: frozen dataclasses to and from JSON, with errors that name the bad key.

Each component owns its config dataclass (``ChunkConfig`` in ingest, ``EncoderConfig``
in encoders, ``VectorIndexConfig`` in index, ``RetrieverConfig`` in retriever);
:class:`IndexConfig` composes the ones an index folder is built with and is saved in
its manifest, so a result can be reproduced from the folder alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mixrag.encoders.config import EncoderConfig
from mixrag.errors import MixragError
from mixrag.index.config import VectorIndexConfig
from mixrag.ingest.chunking import ChunkConfig

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys by name."""
    if not isinstance(data, dict):
        raise MixragError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise MixragError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(names)}")
    return cls(**data)


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(obj)


@dataclass(frozen=True)
class IndexConfig:
    """Everything an index folder is built with: chunking, encoder, vector index."""

    chunking: ChunkConfig = field(default_factory=ChunkConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    vectors: VectorIndexConfig = field(default_factory=VectorIndexConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def with_overrides(
        self,
        chunking: dict[str, Any] | None = None,
        encoder: dict[str, Any] | None = None,
        vectors: dict[str, Any] | None = None,
    ) -> IndexConfig:
        """A copy with some fields of its parts replaced (validated by each part)."""
        return IndexConfig(
            chunking=dataclasses.replace(self.chunking, **(chunking or {})),
            encoder=dataclasses.replace(self.encoder, **(encoder or {})),
            vectors=dataclasses.replace(self.vectors, **(vectors or {})),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexConfig:
        parts = {"chunking": ChunkConfig, "encoder": EncoderConfig, "vectors": VectorIndexConfig}
        unknown = sorted(set(data) - set(parts))
        if unknown:
            raise MixragError(f"IndexConfig: unknown field(s) {unknown}; known: {sorted(parts)}")
        return cls(**{k: from_dict(c, data.get(k, {})) for k, c in parts.items()})
