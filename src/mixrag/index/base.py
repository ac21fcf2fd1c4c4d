"""What every index has in common, whichever store holds it: the configuration check,
the encoder (fingerprint-checked), the retriever, removal by path, closing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from mixrag.encoders.sentence import SentenceTransformerEncoder
from mixrag.errors import IndexMismatchError, MixragError
from mixrag.index.config import IndexConfig
from mixrag.retriever.retriever import Retriever, RetrieverConfig, VectorSearch
from mixrag.store.base import PassageStore

if TYPE_CHECKING:
    from mixrag.encoders.base import Encoder


def checked_encoder(
    where: str,
    config: IndexConfig,
    manifest: dict[str, Any],
    given: SentenceTransformerEncoder | None,
) -> SentenceTransformerEncoder:
    """``given`` (or a new encoder for ``config``) after checking it is the one the index
    at ``where`` was built with: same model name, weight fingerprint and dimension."""
    enc = given or SentenceTransformerEncoder(config.encoder)
    if enc.config.model != config.encoder.model:
        raise IndexMismatchError(
            f"{where} uses encoder {config.encoder.model!r}, not {enc.config.model!r}"
        )
    recorded = manifest.get("encoder", {})
    if recorded.get("fingerprint") and recorded["fingerprint"] != enc.fingerprint:
        raise IndexMismatchError(
            f"{where} was built with encoder {recorded.get('model')!r} "
            f"(fingerprint {recorded['fingerprint']}), but {enc.name!r} loads weights "
            f"with fingerprint {enc.fingerprint}: results would be meaningless"
        )
    if recorded.get("dim") and recorded["dim"] != enc.dim:
        raise IndexMismatchError(
            f"{where}: encoder dimension {enc.dim} != index dimension {recorded['dim']}"
        )
    return enc


def encoder_record(enc: SentenceTransformerEncoder) -> dict[str, Any]:
    """What a manifest records of the encoder that built the passage vectors."""
    return {
        "model": enc.name,
        "dim": enc.dim,
        "fingerprint": enc.fingerprint,
        "max_tokens": enc.max_tokens,
    }


def config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """One line per differing (nested) key: 'key: index has X, asked for Y'."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out.extend(config_diff(va, vb, f"{prefix}{key}."))
        elif va != vb:
            out.append(f"{prefix}{key}: index has {va!r}, asked for {vb!r}")
    return out


class IndexBase:
    """Shared by :class:`~mixrag.index.folder.Index` and :class:`~mixrag.index.postgres.PgIndex`."""

    store: PassageStore
    config: IndexConfig
    manifest: dict[str, Any]
    _given_encoder: SentenceTransformerEncoder | None
    _encoder: SentenceTransformerEncoder | None

    @property
    def location(self) -> str:
        """Where the index lives, for messages."""
        raise NotImplementedError

    @property
    def vectors(self) -> VectorSearch:
        """The nearest-neighbour search over the stored d(z) (FAISS, or pgvector)."""
        raise NotImplementedError

    def _check_asked(self, asked: IndexConfig) -> None:
        """Refuse settings this kind of index cannot honour (none by default)."""

    def _forget_vectors(self) -> None:
        """Drop the loaded vector index so the next use follows the new settings."""
        raise NotImplementedError

    def check_config(self, asked: IndexConfig) -> None:
        """Refuse ``asked`` if its chunking or encoder differ (naming each difference);
        adopt its vector-index settings (applied on the next use or write)."""
        self._check_asked(asked)
        mine, theirs = self.config.to_dict(), asked.to_dict()
        diffs = config_diff(
            {k: mine[k] for k in ("chunking", "encoder")},
            {k: theirs[k] for k in ("chunking", "encoder")},
        )
        if diffs:
            raise IndexMismatchError(f"{self.location} was built differently: " + "; ".join(diffs))
        if asked.vectors != self.config.vectors:
            self.config = IndexConfig(self.config.chunking, self.config.encoder, asked.vectors)
            self.manifest["config"] = self.config.to_dict()
            self._forget_vectors()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def encoder(self) -> SentenceTransformerEncoder:
        """The index's encoder; its weights must match the fingerprint it was built with."""
        if self._encoder is None:
            self._encoder = checked_encoder(
                self.location, self.config, self.manifest, self._given_encoder
            )
        return self._encoder

    def use_encoder(self, encoder: SentenceTransformerEncoder) -> None:
        """Encode passages with ``encoder`` from now on (e.g. a
        :class:`~mixrag.encoders.ray.RayEncoder` spreading the work over a cluster); it
        must be the index's model: same name, weights and dimension."""
        self._encoder = checked_encoder(self.location, self.config, self.manifest, encoder)

    @property
    def dim(self) -> int:
        recorded = self.manifest.get("encoder", {}).get("dim")
        return int(recorded) if recorded else self.encoder.dim

    def _files_to_remove(self, paths: Sequence[str | Path]) -> list[str]:
        """The indexed files ``paths`` name (files, or every file under a folder), in
        order, once each; :class:`MixragError` naming any path that matches nothing."""
        targets: list[str] = []
        unknown = []
        for raw in paths:
            matched = self.store.files_under(str(Path(raw).expanduser().resolve()))
            if not matched:
                unknown.append(str(raw))
            targets.extend(matched)
        if unknown:
            raise MixragError(f"not in the index: {', '.join(unknown)}")
        return list(dict.fromkeys(targets))

    def retriever(
        self,
        config: RetrieverConfig | None = None,
        *,
        query_encoder: Encoder | None = None,
        **overrides: Any,
    ) -> Retriever:
        """A :class:`~mixrag.retriever.Retriever` over this index.

        ``query_encoder`` replaces the index's encoder for questions only (a trained
        q(x)); passages keep their stored d(z).
        """
        cfg = config or RetrieverConfig()
        if overrides:
            import dataclasses

            cfg = dataclasses.replace(cfg, **overrides)
        return Retriever(self, cfg, query_encoder=query_encoder)
