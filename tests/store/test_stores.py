"""The passage store's contract, for both backends: SQLite (the default) and
PostgreSQL with pgvector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mixrag.errors import MixragError
from mixrag.store import FileUpdate, NewPassage, PassageStore, SqlitePassageStore
from mixrag.store.fts import match_expression, query_terms
from mixrag.store.pg_url import is_postgres_url, redact, split_schema
from mixrag.store.postgres import PgPassageStore
from mixrag.types import Passage

DIM = 4


def update(path: str, texts: list[str], sha: str = "h1") -> FileUpdate:
    doc = f"{path}#"
    passages = [
        NewPassage(
            Passage(f"{path}-{i}", doc, "Title", t, i, path, {"n": i}),
            np.full(DIM, i + 1, dtype=np.float32),
        )
        for i, t in enumerate(texts)
    ]
    return FileUpdate(path, sha, 10, 1.0, [(doc, "", "Title", {})], passages)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> PassageStore:
    if request.param == "sqlite":
        return SqlitePassageStore(tmp_path / "s.sqlite")
    url, schema = split_schema(request.getfixturevalue("pg_store_url"))
    pg = PgPassageStore(url, schema)
    pg.ensure_vectors(DIM, hnsw=(8, 32))
    request.addfinalizer(pg.close)
    return pg


def test_write_read_and_generation(store: PassageStore) -> None:
    assert store.generation == 0
    removed, added = store.write_files([update("/a", ["the cat sat", "a dog ran"])])
    assert removed == [] and len(added) == 2
    assert store.generation == 1
    ps = store.passages(list(added[::-1]))
    assert [p.text for p in ps] == ["a dog ran", "the cat sat"]
    assert ps[0].source == "/a" and ps[0].metadata == {"n": 1}
    np.testing.assert_array_equal(store.vectors(list(added), DIM)[1], np.full(DIM, 2.0))
    assert store.counts() == {"files": 1, "documents": 1, "passages": 2}


def test_replacing_a_file_removes_its_old_passages(store: PassageStore) -> None:
    _, first = store.write_files([update("/a", ["one", "two"])])
    removed, added = store.write_files([update("/a", ["three"], sha="h2")])
    assert sorted(removed) == sorted(first.tolist())
    assert store.counts()["passages"] == 1
    assert store.file_record("/a").sha256 == "h2"  # type: ignore[union-attr]
    assert store.bm25("one", 5) == []
    assert [r for r, _ in store.bm25("three", 5)] == added.tolist()


def test_failed_transaction_changes_nothing(store: PassageStore) -> None:
    store.write_files([update("/a", ["one"])])
    bad = update("/b", ["x"])
    dup = update("/a", ["y"])  # passage id "/a-0" collides with the existing one
    with pytest.raises(Exception, match=r"(?i)unique"):
        store.write_files([bad, FileUpdate("/c", "h", 1, 1.0, dup.documents, dup.passages)])
    assert store.counts() == {"files": 1, "documents": 1, "passages": 1}
    assert store.generation == 1
    assert store.file_record("/b") is None


def test_remove_files_and_folder_prefix(store: PassageStore) -> None:
    store.write_files([update("/d/a", ["one"]), update("/d/b", ["two"]), update("/dx", ["three"])])
    assert store.files_under("/d") == ["/d/a", "/d/b"]
    removed = store.remove_files(["/d/a", "/d/b"])
    assert len(removed) == 2 and store.counts()["files"] == 1


def test_bm25_ranks_matching_passages(store: PassageStore) -> None:
    store.write_files(
        [update("/a", ["the tesla coil was invented", "cats and dogs", "tesla tesla motors"])]
    )
    hits = store.bm25("Who invented the Tesla coil?", 5)
    texts = [store.passages([r])[0].text for r, _ in hits]
    assert texts[0] == "the tesla coil was invented"
    assert "cats and dogs" not in texts
    assert all(s > 0 for _, s in hits)


def test_bm25_of_chosen_passages_keeps_each_score(store: PassageStore) -> None:
    texts = ["the tesla coil was invented", "cats and dogs", "tesla tesla motors", "a coil"]
    _, rows = store.write_files([update("/a", texts)])
    question = "Who invented the Tesla coil?"
    everywhere = dict(store.bm25(question, 10))
    chosen = [int(r) for r in rows[1:]]
    some = store.bm25(question, 10, rowids=chosen)
    # "cats and dogs" shares no term; the others keep their corpus-wide scores, best first
    assert [r for r, _ in some] == [r for r, _ in store.bm25(question, 10) if r in chosen]
    assert {r for r, _ in some} == {int(rows[2]), int(rows[3])}
    assert [s for _, s in some] == pytest.approx([everywhere[r] for r, _ in some], rel=1e-6)
    assert store.bm25(question, 1, rowids=chosen) == some[:1]
    assert store.bm25(question, 10, rowids=[]) == []


def test_iter_vectors_in_batches(store: PassageStore) -> None:
    store.write_files([update("/a", [f"t{i}" for i in range(7)])])
    got = list(store.iter_vectors(DIM, batch=3))
    assert [len(ids) for ids, _ in got] == [3, 3, 1]
    assert np.concatenate([v for _, v in got]).shape == (7, DIM)


def test_query_terms_drop_stop_words_and_quote() -> None:
    assert query_terms("What is the Tesla coil?") == ["tesla", "coil"]
    assert query_terms("what is it") == ["what", "is", "it"]  # only stop words: keep them
    assert match_expression('say "NEAR" -x') == '"say" OR "near" OR "x"'
    assert match_expression("?!") is None


def test_nearest_is_exact_inner_product_search(request: pytest.FixtureRequest) -> None:
    """pgvector's answer to FAISS's search(q, k): exact scan and HNSW agree with numpy."""
    url, schema = split_schema(request.getfixturevalue("pg_store_url"))
    pg = PgPassageStore(url, schema)
    request.addfinalizer(pg.close)
    pg.ensure_vectors(DIM, hnsw=(8, 32))
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((40, DIM)).astype(np.float32)
    passages = [
        NewPassage(Passage(f"p{i}", "/a#", "T", f"text {i}", i, "/a", {}), v)
        for i, v in enumerate(vecs)
    ]
    _, rowids = pg.write_files([FileUpdate("/a", "h", 1, 1.0, [("/a#", "", "T", {})], passages)])
    q = rng.standard_normal((3, DIM)).astype(np.float32)
    want = np.argsort(-(q @ vecs.T), axis=1, kind="stable")[:, :5]
    for ef in (None, 40):
        D, I = pg.nearest(q, 5, ef)
        assert [[int(np.where(rowids == r)[0][0]) for r in row] for row in I] == want.tolist()
        np.testing.assert_allclose(D, np.take_along_axis(q @ vecs.T, want, 1), rtol=1e-5)
    D, I = pg.nearest(q[:1], 50, None)  # more than there are: -1 padded, as FAISS does
    assert (I[0, 40:] == -1).all() and (I[0, :40] >= 0).all()


def test_schema_names_are_checked() -> None:
    assert split_schema("postgresql://h/db") == ("postgresql://h/db", "mixrag")
    assert split_schema("postgresql://h/db#Mine_2") == ("postgresql://h/db", "mine_2")
    with pytest.raises(MixragError, match="schema name"):
        split_schema("postgresql://h/db#x; DROP TABLE y")


def test_store_urls_are_told_apart_and_redacted() -> None:
    assert is_postgres_url("postgres://h/db") and is_postgres_url("postgresql://h/db#s")
    assert not is_postgres_url("idx") and not is_postgres_url(None)
    assert redact("postgresql://me:secret@h:5433/db#s") == "postgresql://me:***@h:5433/db#s"
    assert redact("postgresql://me@h/db") == "postgresql://me@h/db"
