"""Chunking: documents into passages z_1..z_M.

The default follows the paper: disjoint passages of at most 100 words, each carrying
its document's title (Lewis et al. 2020, §3, following DPR). A document is cut into
ceil(N / 100) passages of equal length rather than full ones plus a short remainder
(``balanced``): on SQuAD dev this raised dense recall@1 from 0.591 to 0.657
(docs/BENCHMARKS.md). Options: passage length, overlap (in words), packing whole
sentences, and ``balanced=False`` for DPR's exact greedy cut. A passage must fit what the encoder
reads: :func:`split_to_fit` halves any chunk whose encoder input is too long, so no
text is ever silently truncated away.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mixrag.errors import MixragError
from mixrag.ingest.documents import Document


@dataclass(frozen=True)
class ChunkConfig:
    """How documents are cut into passages.

    words: passage length in words (whitespace-separated tokens).
    overlap: words shared by consecutive passages (0 = disjoint, the paper's setting).
    sentences: pack whole sentences up to ``words`` instead of cutting mid-sentence
        (a sentence longer than ``words`` is still cut).
    balanced: cut a document of N words into ceil(N / words) passages of equal length
        instead of full passages plus a short remainder (a 130-word paragraph becomes
        65 + 65, not 100 + 30). Passages stay disjoint and at most ``words`` long; tiny
        tail passages otherwise match short questions too well (docs/BENCHMARKS.md).
        Ignored when ``overlap`` > 0.
    """

    words: int = 100
    overlap: int = 0
    sentences: bool = False
    balanced: bool = True

    def __post_init__(self) -> None:
        if self.words < 1:
            raise MixragError(f"chunk words must be >= 1, got {self.words}")
        if not 0 <= self.overlap < self.words:
            raise MixragError(
                f"chunk overlap must be in [0, words={self.words}), got {self.overlap}"
            )


@dataclass(frozen=True)
class Chunk:
    """A passage's text before it gets an id: position within the document and metadata."""

    text: str
    position: int
    metadata: dict[str, Any]


# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) and white space.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")


def split_sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]


def _words_with_segment(doc: Document, sentences: bool) -> list[tuple[list[str], int]]:
    """Units to pack: (words, segment index). Sentences when asked, else single words."""
    units: list[tuple[list[str], int]] = []
    for si, seg in enumerate(doc.segments):
        if sentences:
            units.extend((s.split(), si) for s in split_sentences(seg.text))
        else:
            units.extend(([w], si) for w in seg.text.split())
    return units


def _meta_for(doc: Document, segs: Sequence[int]) -> dict[str, Any]:
    """Metadata of a passage spanning segments ``segs``: the first's, plus ``page_end``."""
    first = doc.segments[segs[0]].metadata
    meta = dict(first)
    last = doc.segments[segs[-1]].metadata
    if "page" in first and last.get("page") != first["page"]:
        meta["page_end"] = last["page"]
    return meta


def chunk_document(doc: Document, config: ChunkConfig) -> list[Chunk]:
    """Cut ``doc`` into passages of at most ``config.words`` words (see :class:`ChunkConfig`)."""
    units = _words_with_segment(doc, config.sentences)
    # Split over-long sentences so every unit fits in one passage.
    flat: list[tuple[list[str], int]] = []
    for words, si in units:
        for i in range(0, len(words), config.words):
            flat.append((words[i : i + config.words], si))

    budget = config.words
    if config.balanced and config.overlap == 0:
        total = sum(len(w) for w, _ in flat)
        n_pieces = -(-total // config.words)  # ceil
        budget = -(-total // n_pieces) if n_pieces else config.words
    chunks: list[Chunk] = []
    start = 0
    while start < len(flat):
        n_words = 0
        end = start
        while end < len(flat) and (n_words + len(flat[end][0]) <= budget or end == start):
            n_words += len(flat[end][0])
            end += 1
        piece = flat[start:end]
        text = " ".join(w for words, _ in piece for w in words)
        chunks.append(Chunk(text, len(chunks), _meta_for(doc, [si for _, si in piece])))
        if end >= len(flat):
            break
        # Step back over trailing units worth at most `overlap` words, always moving forward.
        back, n_back = end, 0
        while back - 1 > start and n_back + len(flat[back - 1][0]) <= config.overlap:
            back -= 1
            n_back += len(flat[back][0])
        start = back
    return chunks


def split_to_fit(
    chunks: list[Chunk],
    title: str,
    count_tokens: Callable[[list[str]], list[int]],
    max_tokens: int,
    render: Callable[[str, str], str],
) -> list[Chunk]:
    """Halve (by words) every chunk whose encoder input exceeds ``max_tokens``, recursively.

    ``render(title, text)`` is the encoder input; ``count_tokens`` counts its tokens
    (special tokens included). Positions are renumbered in document order; no text is
    dropped. A single word too long to fit stays whole: the encoder then truncates it.
    """

    def fit(text: str, n_tokens: int) -> list[str]:
        words = text.split()
        if n_tokens <= max_tokens or len(words) < 2:
            return [text]
        halves = [" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :])]
        counts = count_tokens([render(title, h) for h in halves])
        return fit(halves[0], counts[0]) + fit(halves[1], counts[1])

    counts = count_tokens([render(title, c.text) for c in chunks]) if chunks else []
    out: list[Chunk] = []
    for c, n in zip(chunks, counts, strict=True):
        for text in fit(c.text, n):
            out.append(Chunk(text, len(out), c.metadata))
    return out
