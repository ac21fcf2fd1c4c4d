"""Request and response bodies of the HTTP API (pydantic models; they make the OpenAPI schema).

Responses are the library objects' ``to_dict()`` forms (``Hit``, ``Answer``), so the API,
``mixrag ... --json`` and Python callers see the same fields.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["rag-sequence", "rag-token", "concat", "closed-book"]
Method = Literal["combined", "dense", "bm25", "hybrid"]
Decoding = Literal["thorough", "fast"]


class AskRequest(BaseModel):
    """A question; every other field falls back to the server's default when left out."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="The question x.")
    mode: Mode | None = Field(None, description="How the K passages are combined.")
    k: int | None = Field(None, description="Passages in the mixture (K), 1..max_k.")
    method: Method | None = Field(None, description="Retrieval method.")
    beams: int | None = Field(
        None,
        description="Beam width (per passage for RAG-Sequence); default 2 for RAG-Sequence, "
        "1 otherwise.",
    )
    decoding: Decoding | None = Field(None, description="RAG-Sequence decoding.")
    max_new_tokens: int | None = Field(None, description="Answer length limit in tokens.")
    min_confidence: float | None = Field(
        None, description="Least p(y|x) of a supported answer, 0..1 (server default if left out)."
    )
    min_relevance: float | Literal["off"] | None = Field(
        None,
        description="Least relevance max_j d(z_j)·q(x) of a supported answer: some passage "
        'must be about the question (server default if left out; "off": no test).',
    )
    alternatives: int | None = Field(
        None,
        description="Also return up to this many other answers ranked below the answer, "
        "with their p(y|x) (0..10; RAG-Sequence: its passages' answers).",
    )
    stream: bool = Field(
        False, description="Stream Server-Sent Events (as does Accept: text/event-stream)."
    )


class TextDocument(BaseModel):
    """A document sent as JSON: ``title`` + ``text``, or a file ``name`` + its ``text``."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The document's text (a file's content when `name` is given).")
    title: str | None = Field(None, description="Title; stored as a JSON record.")
    name: str | None = Field(
        None, description="File name with a supported suffix, e.g. notes.md; replaces a same name."
    )


class PassageOut(BaseModel):
    id: str
    doc_id: str
    title: str
    text: str
    position: int
    source: str
    metadata: dict[str, Any]
    location: str = Field(
        "", description='Where in its file: "p. 3", "slide 2 (Results)", "sheet Cities, rows 2–40".'
    )


class HitOut(BaseModel):
    rank: int
    score: float = Field(description="s = dense + w · bm25, the score of the prior.")
    dense: float | None = Field(None, description="d(z)ᵀq(x); null when w = 0.")
    bm25: float | None = Field(None, description="BM25 / the question's best; null when w = 0.")
    prior: float = Field(description="p_eta(z|x) over the K hits.")
    rank_score: float
    passage: PassageOut


class SearchOut(BaseModel):
    question: str
    method: str
    k: int
    hits: list[HitOut]


class CitationOut(BaseModel):
    rank: int
    score: float
    dense: float | None = None
    bm25: float | None = None
    rank_score: float
    prior: float = Field(description="p_eta(z|x).")
    posterior: float | None = Field(description="p(z|x,y).")
    logprob: float | None = Field(description="log p_phi(y|x,z); null where unknown.")
    token_share: float | None = Field(description="RAG-Token: mean per-token posterior.")
    passage: PassageOut


class AlternativeOut(BaseModel):
    answer: str
    logprob: float = Field(description="log p(y'|x) under the answer's mode.")
    probability: float


class AnswerOut(BaseModel):
    question: str
    mode: str
    answer: str
    logprob: float | None = Field(description="log p(y|x) under the mode's model.")
    probability: float | None
    tokens: list[str]
    token_posteriors: list[list[float | None]]
    passages: list[CitationOut]
    timings: dict[str, float]
    supported: bool = Field(
        True,
        description="p(y|x) >= min_confidence and relevance >= min_relevance: the indexed "
        "documents support the answer.",
    )
    gain: float | None = Field(
        None, description="log p(y|x) - log p(y|x, no passage): what the passages added (nats)."
    )
    min_confidence: float | None = Field(None, description="The threshold it was judged by.")
    min_gain: float | None = Field(None, description="Threshold on the gain; null: not used.")
    relevance: float | None = Field(
        None, description="max_j d(z_j)·q(x): how close the best passage is to the question."
    )
    min_relevance: float | None = Field(
        None, description="Threshold on the relevance; null: not used."
    )
    alternatives: list[AlternativeOut] = Field(
        default_factory=list,
        description="Other answers ranked below this one, best first (asked for with "
        "`alternatives`).",
    )


class DocumentOut(BaseModel):
    id: str = Field(description="16 hex digits of sha256(indexed path): the key to DELETE.")
    name: str
    path: str
    uploaded: bool = Field(description="Stored in the index's uploads/ folder by this API.")
    documents: int
    passages: int
    size: int
    sha256: str
    indexed_at: float


class DocumentsOut(BaseModel):
    documents: list[DocumentOut]


class UploadOut(BaseModel):
    status: Literal["added", "updated", "unchanged"]
    document: DocumentOut
    report: dict[str, Any]


class HealthOut(BaseModel):
    status: str


class ErrorOut(BaseModel):
    error: str = Field(description="A short code, e.g. invalid_request, unsupported_file_type.")
    detail: str = Field(description="What was wrong, in words.")
