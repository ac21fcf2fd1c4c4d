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
from dataclasses import dataclass, replace
from typing import Any

from mixrag.errors import MixragError
from mixrag.ingest.documents import Document, Segment


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
    """A passage's text before it gets an id: position within the document and metadata.

    A chunk cut from a table starts with the table's ``head`` and holds whole rows, one
    per line after the head; ``rows`` are their numbers in the source, so
    :func:`split_to_fit` can halve it between rows and keep the head in both halves.
    """

    text: str
    position: int
    metadata: dict[str, Any]
    head: str = ""
    rows: tuple[int, ...] = ()


# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) and white space.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+")


def split_sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]


def _groups(segments: Sequence[Segment]) -> list[list[Segment]]:
    """Runs of segments a passage may span: each unit alone, flowing neighbours together."""
    groups: list[list[Segment]] = []
    for seg in segments:
        if seg.unit or not groups or groups[-1][-1].unit:
            groups.append([seg])
        else:
            groups[-1].append(seg)
    return groups


def _budget(total: int, limit: int, config: ChunkConfig) -> int:
    """Words per passage: ``limit``, or an equal share of ``total`` when balanced."""
    if config.balanced and config.overlap == 0 and total:
        n_pieces = -(-total // limit)  # ceil
        return -(-total // n_pieces)
    return limit


def _pack(sizes: Sequence[int], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Consecutive units (of ``sizes`` words) packed into [start, end) runs of <= ``budget``
    words (a unit alone may be longer), consecutive runs sharing <= ``overlap`` words."""
    runs: list[tuple[int, int]] = []
    start = 0
    while start < len(sizes):
        n_words = 0
        end = start
        while end < len(sizes) and (n_words + sizes[end] <= budget or end == start):
            n_words += sizes[end]
            end += 1
        runs.append((start, end))
        if end >= len(sizes):
            break
        # Step back over trailing units worth at most `overlap` words, always moving forward.
        back, n_back = end, 0
        while back - 1 > start and n_back + sizes[back - 1] <= overlap:
            back -= 1
            n_back += sizes[back]
        start = back
    return runs


def _flow_meta(segments: Sequence[Segment], first: int, last: int) -> dict[str, Any]:
    """Metadata of a passage spanning segments first..last: the first's, plus ``page_end``."""
    meta = dict(segments[first].metadata)
    end = segments[last].metadata
    if "page" in meta and end.get("page") != meta["page"]:
        meta["page_end"] = end["page"]
    return meta


def _chunk_flow(segments: Sequence[Segment], config: ChunkConfig) -> list[Chunk]:
    """Passages of words (or whole sentences) that may run from one segment into the next."""
    units: list[tuple[list[str], int]] = []  # (words, segment index)
    for si, seg in enumerate(segments):
        if config.sentences:
            units.extend((s.split(), si) for s in split_sentences(seg.text))
        else:
            units.extend(([w], si) for w in seg.text.split())
    # Split over-long sentences so every unit fits in one passage.
    flat = [
        (words[i : i + config.words], si)
        for words, si in units
        for i in range(0, len(words), config.words)
    ]
    sizes = [len(w) for w, _ in flat]
    budget = _budget(sum(sizes), config.words, config)
    chunks = []
    for start, end in _pack(sizes, budget, config.overlap):
        text = " ".join(w for words, _ in flat[start:end] for w in words)
        chunks.append(Chunk(text, 0, _flow_meta(segments, flat[start][1], flat[end - 1][1])))
    return chunks


def _table_chunk(
    head: str, lines: Sequence[str], rows: Sequence[int], meta: dict[str, Any]
) -> Chunk:
    """Table rows as a chunk: the head, one row per line; ``row`` / ``row_end`` say which."""
    meta = {k: v for k, v in meta.items() if k not in ("row", "row_end")}
    meta["row"] = rows[0]
    if rows[-1] != rows[0]:
        meta["row_end"] = rows[-1]
    text = "\n".join([head, *lines] if head else lines)
    return Chunk(text, 0, meta, head=head, rows=tuple(rows))


def _chunk_table(seg: Segment, config: ChunkConfig) -> list[Chunk]:
    """Passages of whole rows, each starting with the table's head (rows never overlap)."""
    head_words = len(seg.head.split())
    limit = max(config.words - head_words, config.words // 2, 1)
    pieces: list[tuple[str, int]] = []  # (text, row number): over-long rows cut by words
    for row in seg.rows:
        words = row.text.split()
        pieces.extend(
            (" ".join(words[i : i + limit]), row.number) for i in range(0, len(words), limit)
        )
    sizes = [len(t.split()) for t, _ in pieces]
    budget = _budget(sum(sizes), limit, config)
    return [
        _table_chunk(
            seg.head,
            [t for t, _ in pieces[start:end]],
            [n for _, n in pieces[start:end]],
            seg.metadata,
        )
        for start, end in _pack(sizes, budget, 0)
    ]


def chunk_document(doc: Document, config: ChunkConfig) -> list[Chunk]:
    """Cut ``doc`` into passages of at most ``config.words`` words (see :class:`ChunkConfig`).

    A passage never crosses a unit segment's edge (a slide, a sheet, a table), so it
    carries exactly that unit's metadata; flowing segments (PDF pages) are cut as one
    text, a passage that runs onto the next page getting ``page_end``. Table passages
    hold whole rows and repeat the table's head (a table's head counts against the
    ``words`` budget).
    """
    chunks: list[Chunk] = []
    for group in _groups(doc.segments):
        if len(group) == 1 and group[0].rows:
            chunks.extend(_chunk_table(group[0], config))
        else:
            chunks.extend(_chunk_flow(group, config))
    return [replace(c, position=i) for i, c in enumerate(chunks)]


def _halves(c: Chunk) -> tuple[Chunk, Chunk] | None:
    """``c`` cut in two: between rows for a table chunk of several rows, else between words
    (a table chunk's head stays at the start of both halves); None when it cannot be cut."""
    if len(c.rows) > 1:
        lines = c.text.split("\n")[1 if c.head else 0 :]
        mid = len(lines) // 2
        return (
            _table_chunk(c.head, lines[:mid], c.rows[:mid], c.metadata),
            _table_chunk(c.head, lines[mid:], c.rows[mid:], c.metadata),
        )
    body = c.text[len(c.head) :] if c.head else c.text
    words = body.split()
    if len(words) < 2:
        return None
    texts = [" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :])]
    if c.head:
        texts = [f"{c.head}\n{t}" for t in texts]
    return replace(c, text=texts[0]), replace(c, text=texts[1])


def split_to_fit(
    chunks: list[Chunk],
    title: str,
    count_tokens: Callable[[list[str]], list[int]],
    max_tokens: int,
    render: Callable[[str, str], str],
) -> list[Chunk]:
    """Halve every chunk whose encoder input exceeds ``max_tokens``, recursively.

    ``render(title, text)`` is the encoder input; ``count_tokens`` counts its tokens
    (special tokens included). Text is halved by words; a table chunk between rows
    first, its head kept in every piece and ``row``/``row_end`` following the rows.
    Positions are renumbered in document order; no text is dropped. A single word too
    long to fit stays whole: the encoder then truncates it.
    """

    def fit(c: Chunk, n_tokens: int) -> list[Chunk]:
        halves = _halves(c) if n_tokens > max_tokens else None
        if halves is None:
            return [c]
        counts = count_tokens([render(title, h.text) for h in halves])
        return fit(halves[0], counts[0]) + fit(halves[1], counts[1])

    counts = count_tokens([render(title, c.text) for c in chunks]) if chunks else []
    out: list[Chunk] = []
    for c, n in zip(chunks, counts, strict=True):
        for piece in fit(c, n):
            out.append(replace(piece, position=len(out)))
    return out
