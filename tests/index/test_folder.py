"""Integration tests of an index folder with the real bundled encoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mixrag.encoders import EncoderConfig, SentenceTransformerEncoder
from mixrag.errors import IndexMismatchError, MixragError, NotAnIndexError
from mixrag.index import VectorIndexConfig
from mixrag.index.config import IndexConfig
from mixrag.index.folder import Index
from mixrag.index.opening import AnyIndex, open_index
from mixrag.index.postgres import PgIndex
from mixrag.index.vectors import FaissVectorIndex
from mixrag.ingest import pipeline
from tests.helpers import DEMO_SQUAD, make_docs


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return make_docs(tmp_path / "docs")


@pytest.fixture
def index(tmp_path: Path, docs: Path, encoder: SentenceTransformerEncoder) -> Index:
    idx = Index.open(tmp_path / "idx", create=True, encoder=encoder)
    report = idx.add([docs])
    assert report.ok and len(report.added) == 3
    return idx


@pytest.fixture(params=["folder", "postgres"])
def any_index(
    request: pytest.FixtureRequest, tmp_path: Path, docs: Path, encoder: SentenceTransformerEncoder
) -> AnyIndex:
    """The same three documents in an index folder and in a PostgreSQL store: the tests
    that take this fixture hold for both backends."""
    target = (
        tmp_path / "idx" if request.param == "folder" else request.getfixturevalue("pg_store_url")
    )
    idx = open_index(target, create=True, encoder=encoder)
    report = idx.add([docs])
    assert report.ok and len(report.added) == 3
    request.addfinalizer(idx.close)
    return idx


def reopen(idx: AnyIndex, encoder: SentenceTransformerEncoder) -> AnyIndex:
    if isinstance(idx, PgIndex):
        return PgIndex.open(idx.store.url, schema=idx.store.schema, encoder=encoder)
    return Index.open(idx.path, encoder=encoder)


def test_answering_passage_comes_first(any_index: AnyIndex) -> None:
    index = any_index
    r = index.retriever()
    for question, source in [
        ("Who founded the Riverside Mill?", "mill.md"),
        ("What did Tesla invent?", "tesla.txt"),
        ("Where is the Amazon rainforest?", "rainforest.html"),
    ]:
        for method in ("dense", "bm25", "hybrid"):
            hits = r.search(question, k=3, method=method)
            assert hits[0].passage.source.endswith(source), (question, method)
            assert sum(h.prior for h in hits) == pytest.approx(1.0)


def test_hits_carry_exact_scores_and_softmax_prior(any_index: AnyIndex) -> None:
    index = any_index
    r = index.retriever(tau=0.5, bm25_weight=0.4)
    hits = r.search("Who founded the mill?", k="all")
    assert len(hits) == 3  # K = M
    q = index.encoder.encode(["Who founded the mill?"])[0]
    best = max(s for _, s in index.store.bm25("Who founded the mill?", 10))
    for h in hits:
        d = index.encoder.encode([f"{h.passage.title}\n{h.passage.text}"])[0]
        assert h.dense == pytest.approx(float(d @ q), abs=1e-5)
        (row,) = index.store.rowids_for([h.passage.id])
        raw = dict(index.store.bm25("Who founded the mill?", 10)).get(row, 0.0)
        assert h.bm25 == pytest.approx(raw / best, abs=1e-6)
        assert h.score == pytest.approx(h.dense + 0.4 * h.bm25, abs=1e-6)
    s = np.array([h.score for h in hits])
    np.testing.assert_allclose(
        [h.prior for h in hits], np.exp(s / 0.5) / np.exp(s / 0.5).sum(), rtol=1e-6
    )
    assert [h.score for h in hits] == sorted([h.score for h in hits], reverse=True)
    # the paper's score alone: the inner product, and no BM25 part
    plain = index.retriever(tau=0.5, bm25_weight=0.0).search("Who founded the mill?", k="all")
    assert all(h.bm25 is None for h in plain)
    assert sorted(h.score for h in plain) == pytest.approx(sorted(h.dense for h in hits))


def test_batched_search_equals_single(any_index: AnyIndex) -> None:
    index = any_index
    r = index.retriever()
    qs = ["Who founded the mill?", "What is a Tesla coil?"]
    batch = r.search_batch(qs, k=2)
    for q, hits in zip(qs, batch, strict=True):
        single = r.search(q, k=2)
        assert [h.passage.id for h in hits] == [h.passage.id for h in single]
        assert [h.score for h in hits] == pytest.approx([h.score for h in single], abs=1e-5)


def test_reindexing_unchanged_files_encodes_nothing(any_index: AnyIndex, docs: Path) -> None:
    index = any_index
    report = index.add([docs])
    assert report.passages_encoded == 0 and len(report.unchanged) == 3


def test_changed_file_replaces_its_passages(any_index: AnyIndex, docs: Path) -> None:
    index = any_index
    (docs / "mill.md").write_text("# Riverside Mill\n\nNow a museum of weaving.", encoding="utf-8")
    report = index.add([docs / "mill.md"])
    assert report.updated == [str((docs / "mill.md").resolve())]
    assert report.passages_removed == 1 and report.passages_added == 1
    hits = index.retriever().search("museum of weaving", k=1)
    assert "museum" in hits[0].passage.text
    assert index.store.counts()["passages"] == 3
    if isinstance(index, Index):
        assert index.vectors.ntotal == 3


def test_remove_documents(any_index: AnyIndex, docs: Path) -> None:
    index = any_index
    removed = index.remove([docs / "tesla.txt"])
    assert removed == [str((docs / "tesla.txt").resolve())]
    hits = index.retriever().search("Tesla coil", k="all")
    assert all("tesla" not in h.passage.source for h in hits)
    with pytest.raises(MixragError, match="not in the index"):
        index.remove([docs / "tesla.txt"])


def test_reopened_index_returns_the_same_results(
    any_index: AnyIndex, encoder: SentenceTransformerEncoder
) -> None:
    index = any_index
    q = "Who founded the mill?"
    before = [(h.passage.id, h.score) for h in index.retriever().search(q, k=3)]
    index.close()
    again = reopen(index, encoder)
    after = [(h.passage.id, h.score) for h in again.retriever().search(q, k=3)]
    assert [a for a, _ in before] == [a for a, _ in after]
    assert [b for _, b in before] == pytest.approx([b for _, b in after], abs=1e-6)
    again.close()


def test_bad_files_are_reported_and_the_rest_indexed(
    tmp_path: Path, encoder: SentenceTransformerEncoder
) -> None:
    docs = make_docs(tmp_path / "d")
    (docs / "empty.txt").write_text("")
    (docs / "binary.txt").write_bytes(b"\x00\x01\x02")
    (docs / "bad.json").write_text("{oops")
    (docs / "image.png").write_bytes(b"\x89PNG")
    idx = Index.open(tmp_path / "idx", create=True, encoder=encoder)
    report = idx.add([docs])
    assert len(report.added) == 3
    assert {Path(p).name for p, _ in report.failed} == {"empty.txt", "binary.txt", "bad.json"}
    assert [Path(p).name for p in report.unsupported] == ["image.png"]
    assert not report.ok


def test_missing_path_writes_nothing(tmp_path: Path, encoder: SentenceTransformerEncoder) -> None:
    idx = Index.open(tmp_path / "idx", create=True, encoder=encoder)
    with pytest.raises(MixragError, match="no such file or folder"):
        idx.add([tmp_path / "nope"])
    assert idx.store.counts()["passages"] == 0


def test_not_an_index(tmp_path: Path) -> None:
    with pytest.raises(NotAnIndexError, match="does not exist"):
        Index.open(tmp_path / "none")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("hi")
    with pytest.raises(NotAnIndexError, match="not a mixrag index"):
        Index.open(tmp_path / "x")
    with pytest.raises(NotAnIndexError, match="not empty"):
        Index.open(tmp_path / "x", create=True)


def test_different_encoder_is_refused(index: Index, tmp_path: Path) -> None:
    index.close()
    with pytest.raises(IndexMismatchError, match=r"chunking\.words"):
        Index.open(
            index.path, config=IndexConfig(chunking=IndexConfig().chunking.__class__(words=50))
        )
    # Same name, other weights: a copy of the model folder with one weight changed.
    src = Path(SentenceTransformerEncoder().load().tokenizer.name_or_path)
    fake = tmp_path / "fake-minilm"
    shutil.copytree(src, fake)
    other = SentenceTransformerEncoder(EncoderConfig(model=str(fake)))
    other.load()[0].auto_model.embeddings.word_embeddings.weight.data[0, 0] += 1.0
    manifest = json.loads((index.path / "mixrag.json").read_text())
    manifest["config"]["encoder"]["model"] = str(fake)
    (index.path / "mixrag.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatchError, match="fingerprint"):
        _ = Index.open(index.path, encoder=other).encoder


@pytest.mark.parametrize("backend", ["folder", "postgres"])
def test_interrupted_ingest_keeps_committed_files_and_rerun_finishes(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    encoder: SentenceTransformerEncoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = make_docs(tmp_path / "d")
    target = tmp_path / "idx" if backend == "folder" else request.getfixturevalue("pg_store_url")
    idx = open_index(target, create=True, encoder=encoder)
    real = pipeline.ingest
    calls = {"n": 0}
    real_encode = encoder.encode

    def flaky_encode(texts: list[str]) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_encode(texts)

    monkeypatch.setattr(encoder, "encode", flaky_encode)
    monkeypatch.setattr(
        pipeline, "ingest", lambda *a, **kw: real(*a, **{**kw, "flush_passages": 1})
    )
    with pytest.raises(KeyboardInterrupt):
        idx.add([docs])
    assert idx.store.counts()["files"] == 1  # the first group committed, the second not
    idx.close()
    monkeypatch.setattr(encoder, "encode", real_encode)
    again = open_index(target, encoder=encoder)
    assert len(again.retriever().search("mill", k="all")) == 1  # usable as it was
    report = again.add([docs])
    assert len(report.unchanged) == 1 and len(report.added) == 2
    assert again.store.counts()["passages"] == 3
    again.close()


def test_crash_before_the_vector_file_is_written_rebuilds_it(
    index: Index, docs: Path, encoder: SentenceTransformerEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = "Who founded the mill?"
    (docs / "new.txt").write_text("The lighthouse keeper founded a bakery in 1920.")

    def crash(self: FaissVectorIndex, path: Path) -> None:
        raise OSError("disk died")

    monkeypatch.setattr(FaissVectorIndex, "save", crash)
    with pytest.raises(OSError, match="disk died"):
        index.add([docs])
    monkeypatch.undo()
    index.close()
    # The store committed generation 2; the FAISS file on disk is still generation 1.
    again = Index.open(index.path, encoder=encoder)
    assert not again.info()["vector_index"]["up_to_date"]
    hits = again.retriever().search("Who founded a bakery?", k=1)
    assert "bakery" in hits[0].passage.text
    assert again.vectors.ntotal == 4
    assert again.info()["vector_index"]["up_to_date"]
    assert again.retriever().search(q, k=1)[0].passage.source.endswith("mill.md")


def test_the_next_write_deletes_what_a_killed_write_left(
    index: Index, docs: Path, dead_pid: int
) -> None:
    # what SIGKILL in the middle of saving the FAISS file or the manifest leaves
    # (bench/crash_loop.py found both)
    left = [
        index.path / f".vectors-1.faiss.{dead_pid}.1.tmp",
        index.path / f".mixrag.json.{dead_pid}.1.tmp",
    ]
    for f in left:
        f.write_bytes(b"half a file")
    (docs / "new.txt").write_text("The lighthouse keeper founded a bakery in 1920.")
    index.add([docs])
    assert not any(f.exists() for f in left)
    assert not list(index.path.glob(".*.tmp"))


QUESTIONS = [
    "What did Tesla invent?",
    "Who won Super Bowl 50?",
    "What is the atomic number of oxygen?",
    "When did the Normans conquer England?",
    "Which rocket launched Apollo 11?",
]


@pytest.fixture(scope="module")
def demo_flat(
    tmp_path_factory: pytest.TempPathFactory, encoder: SentenceTransformerEncoder
) -> Path:
    """A flat index of the demo SQuAD articles, encoded once; tests copy it."""
    path = tmp_path_factory.mktemp("demo") / "flat"
    with Index.open(path, create=True, encoder=encoder) as flat:
        flat.add([DEMO_SQUAD])
        assert flat.store.counts()["passages"] > 300
    return path


def copy_with(
    demo_flat: Path, to: Path, encoder: SentenceTransformerEncoder, **vectors: object
) -> Index:
    shutil.copytree(demo_flat, to)
    return Index.open(
        to,
        encoder=encoder,
        config=IndexConfig(vectors=VectorIndexConfig(**vectors)),  # type: ignore[arg-type]
    )


def top10(index: Index) -> list[list[str]]:
    return [
        [h.passage.id for h in hits] for hits in index.retriever().search_batch(QUESTIONS, k=10)
    ]


def test_hnsw_index_agrees_with_flat_on_real_passages(
    tmp_path: Path, demo_flat: Path, encoder: SentenceTransformerEncoder
) -> None:
    flat = Index.open(demo_flat, encoder=encoder)
    hnsw = copy_with(demo_flat, tmp_path / "hnsw", encoder, kind="hnsw")
    assert hnsw.vectors.kind == "hnsw"
    a, b = top10(flat), top10(hnsw)
    overlap = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)])
    assert overlap >= 0.9
    assert [x[0] for x in a] == [y[0] for y in b]


def test_ivfpq_index_reranks_exactly_and_rebuilds_only_for_a_new_structure(
    tmp_path: Path,
    demo_flat: Path,
    encoder: SentenceTransformerEncoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flat = Index.open(demo_flat, encoder=encoder)
    n = flat.store.counts()["passages"]
    ivf = copy_with(demo_flat, tmp_path / "ivf", encoder, kind="ivfpq")
    assert ivf.vectors.kind == "ivfpq"
    info = ivf.info()["vector_index"]
    assert info["params"] == {
        "nlist": n // 39,
        "pq_m": 48,
        "pq_nbits": 8,
        "trained_for": n,
        "ivf_nprobe": 16,
        "rerank_factor": 40,
    }
    # Every list probed at this size, shortlist of 400 re-ranked exactly: flat's answer.
    assert top10(ivf) == top10(flat)
    ivf.close()

    rebuilds = []
    real = Index._rebuild_vectors
    monkeypatch.setattr(Index, "_rebuild_vectors", lambda self: rebuilds.append(1) or real(self))
    # Search-time settings apply on load, no rebuild; the memory-mapped index is the same.
    mapped = Index.open(
        ivf.path,
        encoder=encoder,
        config=IndexConfig(vectors=VectorIndexConfig(kind="ivfpq", ivf_nprobe=4, mmap=True)),
    )
    assert mapped.vectors.mapped and mapped.vectors.index.nprobe == 4 and not rebuilds
    mapped_top = top10(mapped)
    memory = Index.open(
        ivf.path,
        encoder=encoder,
        config=IndexConfig(vectors=VectorIndexConfig(kind="ivfpq", ivf_nprobe=4)),
    )
    assert not memory.vectors.mapped and top10(memory) == mapped_top and not rebuilds
    memory.close()
    # Writing to a mapped index loads it, adds in place, saves, and maps the new file.
    (tmp_path / "new.txt").write_text("The lighthouse keeper founded a bakery in 1920.")
    mapped.add([tmp_path / "new.txt"])
    assert not rebuilds and mapped.vectors.mapped and mapped.vectors.ntotal == n + 1
    assert "bakery" in mapped.retriever().search("Who founded a bakery?", k=1)[0].passage.text
    mapped.remove([tmp_path / "new.txt"])
    assert not rebuilds and mapped.vectors.ntotal == n
    assert mapped.vectors.trained_for == n  # adds and removals do not retrain
    mapped.close()
    # A new structure (24-byte codes) is rebuilt from the stored vectors.
    smaller = Index.open(
        ivf.path,
        encoder=encoder,
        config=IndexConfig(vectors=VectorIndexConfig(kind="ivfpq", pq_m=24)),
    )
    assert smaller.vectors.describe()["pq_m"] == 24 and rebuilds == [1]
    assert top10(smaller) == top10(flat)
    assert json.loads((ivf.path / "mixrag.json").read_text())["vectors"]["built_with"]["pq_m"] == 24
    # Once the corpus has doubled since training, the next write retrains.
    smaller._writable_vectors().trained_for = n // 2
    smaller.add([tmp_path / "new.txt"])
    assert rebuilds == [1, 1] and smaller.vectors.trained_for == n + 1


def test_ivfpq_index_is_flat_until_it_can_be_trained(
    tmp_path: Path, docs: Path, encoder: SentenceTransformerEncoder
) -> None:
    from mixrag.cli.format import info_text

    cfg = IndexConfig(vectors=VectorIndexConfig(kind="ivfpq", mmap=True))
    idx = Index.open(tmp_path / "idx", create=True, config=cfg, encoder=encoder)
    idx.add([docs])
    assert idx.vectors.kind == "flat" and idx.vectors.mapped
    assert "flat, memory-mapped; ivfpq from 256 passages" in info_text(idx.info())
    assert (
        idx.retriever().search("Who founded the mill?", k=1)[0].passage.source.endswith("mill.md")
    )


def test_pq_m_not_dividing_the_dimension_is_refused_before_writing(
    tmp_path: Path, docs: Path, encoder: SentenceTransformerEncoder
) -> None:
    cfg = IndexConfig(vectors=VectorIndexConfig(kind="ivfpq", pq_m=50))
    idx = Index.open(tmp_path / "idx", create=True, config=cfg, encoder=encoder)
    with pytest.raises(MixragError, match="pq_m must divide the vector dimension 384, got 50"):
        idx.add([docs])
    assert idx.store.counts()["passages"] == 0
