from __future__ import annotations

import pytest

from mixrag.errors import MixragError
from mixrag.ingest.chunking import Chunk, ChunkConfig, chunk_document, split_sentences, split_to_fit
from mixrag.ingest.documents import Document, Segment


def doc(text: str, *segments: Segment) -> Document:
    segs = segments or (Segment(text),)
    return Document(key="", title="T", segments=tuple(segs))


def words(n: int, start: int = 0) -> str:
    return " ".join(f"w{i}" for i in range(start, start + n))


def test_greedy_cut_is_disjoint_100_word_passages() -> None:
    chunks = chunk_document(doc(words(250)), ChunkConfig(balanced=False))
    assert [len(c.text.split()) for c in chunks] == [100, 100, 50]
    assert " ".join(c.text for c in chunks) == words(250)
    assert [c.position for c in chunks] == [0, 1, 2]


def test_overlap_repeats_words() -> None:
    chunks = chunk_document(doc(words(30)), ChunkConfig(words=10, overlap=4))
    assert chunks[0].text.split() == words(10).split()
    assert chunks[1].text.split()[:4] == chunks[0].text.split()[-4:]
    assert chunks[-1].text.split()[-1] == "w29"
    # every word covered, in order
    seen = [w for c in chunks for w in c.text.split()]
    assert sorted(set(seen), key=lambda w: int(w[1:])) == words(30).split()


def test_default_cuts_evenly_into_passages_of_at_most_100_words() -> None:
    chunks = chunk_document(doc(words(250)), ChunkConfig())
    assert [len(c.text.split()) for c in chunks] == [84, 84, 82]
    assert " ".join(c.text for c in chunks) == words(250)
    assert [c.position for c in chunks] == [0, 1, 2]
    chunks = chunk_document(doc(words(130)), ChunkConfig())
    assert [len(c.text.split()) for c in chunks] == [65, 65]
    chunks = chunk_document(doc(words(100)), ChunkConfig())
    assert [len(c.text.split()) for c in chunks] == [100]


def test_sentence_packing_keeps_sentences_whole() -> None:
    text = "One two three. Four five six seven! Eight nine? Ten eleven twelve thirteen."
    assert split_sentences(text) == [
        "One two three.",
        "Four five six seven!",
        "Eight nine?",
        "Ten eleven twelve thirteen.",
    ]
    chunks = chunk_document(doc(text), ChunkConfig(words=7, sentences=True, balanced=False))
    assert [c.text for c in chunks] == [
        "One two three. Four five six seven!",
        "Eight nine? Ten eleven twelve thirteen.",
    ]


def test_sentence_longer_than_limit_is_cut() -> None:
    chunks = chunk_document(
        doc(words(25) + "."), ChunkConfig(words=10, sentences=True, balanced=False)
    )
    assert [len(c.text.split()) for c in chunks] == [10, 10, 5]


def test_pages_follow_words_into_passages() -> None:
    d = doc("", Segment(words(8), {"page": 1}), Segment(words(8, 8), {"page": 2}))
    chunks = chunk_document(d, ChunkConfig(words=6, balanced=False))
    assert chunks[0].metadata == {"page": 1}
    assert chunks[1].metadata == {"page": 1, "page_end": 2}
    assert chunks[2].metadata == {"page": 2}


def test_empty_document_has_no_chunks() -> None:
    assert chunk_document(doc("   \n "), ChunkConfig()) == []


@pytest.mark.parametrize("kwargs", [{"words": 0}, {"overlap": -1}, {"words": 5, "overlap": 5}])
def test_bad_config_names_the_value(kwargs: dict[str, int]) -> None:
    with pytest.raises(MixragError, match="must be"):
        ChunkConfig(**kwargs)


def test_split_to_fit_halves_until_every_piece_fits() -> None:
    def count(texts: list[str]) -> list[int]:
        return [len(t.split()) * 2 for t in texts]  # "2 tokens per word"

    chunks = [Chunk(words(10), 0, {}), Chunk(words(40, 10), 1, {"page": 3})]
    out = split_to_fit(chunks, "", count, max_tokens=24, render=lambda t, x: x)
    assert all(count([c.text])[0] <= 24 for c in out)
    assert " ".join(c.text for c in out) == words(50)  # nothing dropped, order kept
    assert [c.position for c in out] == list(range(len(out)))
    assert out[-1].metadata == {"page": 3}


def test_split_to_fit_counts_the_title() -> None:
    out = split_to_fit(
        [Chunk(words(10), 0, {})],
        "a long title",
        lambda ts: [len(t.split()) for t in ts],
        max_tokens=10,
        render=lambda t, x: f"{t}\n{x}",
    )
    assert all(len(c.text.split()) + 3 <= 10 for c in out)
