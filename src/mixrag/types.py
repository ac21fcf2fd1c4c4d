"""Plain data types shared by every package: passages, documents, retrieval hits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mixrag.location import location


@dataclass(frozen=True)
class Passage:
    """One retrievable unit z: a chunk of a document with its title.

    ``id`` is stable: a hash of the document id and the passage content, so the
    same text in the same document keeps its id across re-indexing.
    """

    id: str
    doc_id: str
    title: str
    text: str
    position: int = 0
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def location(self) -> str:
        """Where in its file the passage is ("p. 3", "slide 2 (Results)"), or ""."""
        return location(self.metadata)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "doc_id": self.doc_id,
            "title": self.title,
            "text": self.text,
            "position": self.position,
            "source": self.source,
            "metadata": dict(self.metadata),
            "location": self.location,
        }


@dataclass(frozen=True)
class Hit:
    """A retrieved passage with its retriever score and prior.

    ``score`` is the retriever score s_j = d(z_j)ᵀq(x) + w · bm25n(x, z_j)
    (``mixrag.retriever.prior.combined_score``) whatever method found the passage, and
    ``dense`` and ``bm25`` its two parts: the inner product and the normalised BM25
    score (None when w = 0: then s_j is the inner product alone, as in the paper).
    ``prior`` is p_eta(z_j|x) = softmax_j(s_j / tau) over the K hits returned for the
    question, from ``mixrag.retriever.prior.log_prior``, the function the mixture
    weights the passages with (``first_k`` renormalises hits cut to fewer);
    ``rank_score`` is what ranked it (s_j for combined, the inner product for dense,
    BM25 for bm25, the fused score for hybrid).
    """

    passage: Passage
    score: float
    prior: float
    rank: int
    rank_score: float
    dense: float | None = None
    bm25: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "score": self.score,
            "dense": self.dense,
            "bm25": self.bm25,
            "prior": self.prior,
            "rank_score": self.rank_score,
            "passage": self.passage.to_dict(),
        }
