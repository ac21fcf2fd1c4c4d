"""IVF-PQ with exact re-ranking, and memory-mapped loading, against exact search."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest

from mixrag.errors import MixragError
from mixrag.index import FaissVectorIndex, VectorIndexConfig
from mixrag.index.vectors import rerank_exact, sample_rows

DIM = 384


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def clustered(n: int, seed: int, centres: np.ndarray) -> np.ndarray:
    """Unit vectors crowding around ``centres`` (noise of norm ~0.6, like bench/scaling.py),
    so the top 10 of a query are near-ties among one centre's points."""
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, len(centres), n)]
    x = x + rng.standard_normal((n, DIM)).astype(np.float32) * (0.6 / np.sqrt(DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found, truth, strict=True)])
    )


class Corpus:
    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        centres = rng.standard_normal((200, DIM)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        self.x = clustered(n, 1, self.centres)
        self.q = clustered(100, 2, self.centres)
        self.ids = np.arange(10_000, 10_000 + n, dtype=np.int64)  # not 0..n-1: ids are kept
        self.by_id = {int(i): j for j, i in enumerate(self.ids)}

    def stored(self, ids: np.ndarray) -> np.ndarray:
        return self.x[[self.by_id[int(i)] for i in ids]]

    def exact(self, q: np.ndarray, k: int) -> np.ndarray:
        return self.ids[np.argsort(-(q @ self.x.T), axis=1)[:, :k]]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus(20_000)


@pytest.fixture(scope="module")
def ivfpq(corpus: Corpus) -> FaissVectorIndex:
    cfg = VectorIndexConfig(kind="ivfpq")
    return FaissVectorIndex.build(corpus.ids, corpus.x, DIM, cfg, stored=corpus.stored)


def test_rerank_returns_the_exact_top_k(corpus: Corpus, ivfpq: FaissVectorIndex) -> None:
    assert ivfpq.kind == "ivfpq" and ivfpq.ntotal == 20_000
    assert ivfpq.describe() == {"nlist": 512, "pq_m": 48, "pq_nbits": 8, "trained_for": 20_000}
    truth = corpus.exact(corpus.q, 10)
    D, I = ivfpq.search(corpus.q, 10)
    with_rerank = recall(I, truth)
    assert with_rerank >= 0.95
    # Scores are the exact inner products, and the order is theirs.
    np.testing.assert_allclose(
        D,
        np.einsum("bd,bkd->bk", corpus.q, corpus.stored(I.ravel()).reshape(100, 10, DIM)),
        rtol=1e-5,
    )
    assert (np.diff(D, axis=1) <= 0).all()
    # Without the stored vectors: IVF-PQ's own approximate order, clearly worse.
    _, I_pq = FaissVectorIndex(ivfpq.index, "ivfpq", ivfpq.config).search(corpus.q, 10)
    without = recall(I_pq, truth)
    assert with_rerank > without + 0.1, (with_rerank, without)


def test_rerank_depth_is_rerank_factor_times_k(corpus: Corpus, ivfpq: FaissVectorIndex) -> None:
    asked = []

    def spy(ids: np.ndarray) -> np.ndarray:
        asked.append(len(ids))
        return corpus.stored(ids)

    cfg = VectorIndexConfig(kind="ivfpq", rerank_factor=3)
    FaissVectorIndex(ivfpq.index, "ivfpq", cfg, stored=spy).search(corpus.q[:1], 7)
    assert asked == [21]  # one store call for the whole batch, 3 × 7 candidates


def test_rerank_exact_pads_missing_candidates() -> None:
    x = np.eye(4, dtype=np.float32)
    q = np.array([[0.1, 0.9, 0.0, 0.5]], dtype=np.float32)
    D, I = rerank_exact(q, np.array([[0, -1, 1, 3]]), 5, lambda ids: x[ids])
    assert I.tolist() == [[1, 3, 0, -1]]
    np.testing.assert_allclose(D[0, :3], [0.9, 0.5, 0.1])


def test_add_and_remove_after_training(corpus: Corpus) -> None:
    cfg = VectorIndexConfig(kind="ivfpq", ivf_nlist=64)
    n = 5_000
    index = FaissVectorIndex.build(corpus.ids[:n], corpus.x[:n], DIM, cfg, stored=corpus.stored)
    centroids = faiss.rev_swig_ptr(index.index.pq.get_centroids(0, 0), 256 * 8).copy()
    new = corpus.ids[n : n + 500]
    index.add(new, corpus.x[n : n + 500])  # encoded with the trained quantisers
    assert index.ntotal == n + 500 and not index.needs_training
    np.testing.assert_array_equal(
        faiss.rev_swig_ptr(index.index.pq.get_centroids(0, 0), 256 * 8), centroids
    )
    _, I = index.search(corpus.x[n : n + 500], 1)
    assert (I[:, 0] == new).mean() >= 0.99  # a stored vector finds itself
    gone = new[:100]
    assert index.remove(gone) == 100
    _, I = index.search(corpus.x[n : n + 100], 10)
    assert not set(I.ravel().tolist()) & set(gone.tolist())
    assert index.ntotal == n + 400


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_mmap_returns_what_memory_does(corpus: Corpus, kind: str, tmp_path: Path) -> None:
    n = 3_000
    cfg = VectorIndexConfig(kind=kind, ivf_nlist=32)
    memory = FaissVectorIndex.build(corpus.ids[:n], corpus.x[:n], DIM, cfg, stored=corpus.stored)
    memory.save(tmp_path / "v.faiss")
    mapped = FaissVectorIndex.load(
        tmp_path / "v.faiss", kind, VectorIndexConfig(kind=kind, mmap=True), stored=corpus.stored
    )
    assert mapped.mapped and mapped.ntotal == n
    if kind == "ivfpq":  # mapped lists, no per-search prefetch threads
        lists = faiss.downcast_InvertedLists(mapped.index.invlists)
        assert isinstance(lists, faiss.OnDiskInvertedLists) and lists.prefetch_nthread == 0
    D0, I0 = memory.search(corpus.q, 10)
    D1, I1 = mapped.search(corpus.q, 10)
    np.testing.assert_array_equal(I0, I1)
    np.testing.assert_array_equal(D0, D1)
    # Read-only: FAISS would abort the process on a write to mapped codes.
    assert not mapped.supports_remove
    with pytest.raises(RuntimeError, match="read-only"):
        mapped.add(corpus.ids[:1] + 10**6, corpus.x[:1])
    with pytest.raises(RuntimeError, match="cannot be saved"):
        mapped.save(tmp_path / "w.faiss")
    # The owner replaces the file by rename: the mapped inode stays valid.
    FaissVectorIndex.build(corpus.ids[:10], corpus.x[:10], DIM, VectorIndexConfig()).save(
        tmp_path / "v.faiss"
    )
    np.testing.assert_array_equal(mapped.search(corpus.q, 10)[1], I0)


def test_automatic_nlist_and_training_sample() -> None:
    cfg = VectorIndexConfig(kind="ivfpq")
    assert cfg.nlist(20_000) == 512  # 20,000 // 39 caps round(4·√20,000) = 566
    assert cfg.nlist(1_000_000) == 2_564  # the 100,000-vector sample caps 4,000
    assert VectorIndexConfig(ivf_train_size=200_000).nlist(1_000_000) == 4_000
    assert cfg.nlist(300) == 7
    assert VectorIndexConfig(ivf_nlist=100).nlist(10**6) == 100
    assert cfg.train_size(50) == 50 and cfg.train_size(10**6) == 100_000
    a, b = sample_rows(1000, 100, 0), sample_rows(1000, 100, 0)
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == 100 and (np.diff(a) > 0).all()
    assert not np.array_equal(a, sample_rows(1000, 100, 1))
    np.testing.assert_array_equal(sample_rows(5, 100, 0), np.arange(5))


def test_too_small_a_corpus_is_flat_until_ivfpq_can_be_trained() -> None:
    cfg = VectorIndexConfig(kind="ivfpq")
    assert cfg.kind_for(255) == "flat" and cfg.kind_for(256) == "ivfpq"
    assert VectorIndexConfig(kind="ivfpq", ivf_nlist=1000).kind_for(999) == "flat"
    x = clustered(300, 3, np.eye(DIM, dtype=np.float32)[:5])
    index = FaissVectorIndex.build(np.arange(300), x, DIM, cfg, stored=lambda ids: x[ids])
    assert index.kind == "ivfpq" and index.describe()["nlist"] == 7
    assert (index.search(x[:20], 1)[1][:, 0] == np.arange(20)).all()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ivf_nprobe": 0}, "ivf_nprobe must be >= 1, got 0"),
        ({"rerank_factor": 0}, "rerank_factor must be >= 1, got 0"),
        ({"pq_m": 0}, "pq_m must be >= 1, got 0"),
        ({"pq_nbits": 17}, "pq_nbits must be between 1 and 16, got 17"),
        ({"ivf_nlist": -1}, "ivf_nlist must be >= 1, or 0 for automatic, got -1"),
        ({"ivf_nlist": 5000, "ivf_train_size": 4000}, "ivf_train_size 4000 is too small"),
        ({"kind": "ivf"}, "index kind must be one of"),
    ],
)
def test_bad_config_values_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(MixragError, match=message):
        VectorIndexConfig(**fields)  # type: ignore[arg-type]


def test_pq_m_must_divide_the_dimension() -> None:
    with pytest.raises(MixragError, match=r"pq_m must divide the vector dimension 384, got 50"):
        FaissVectorIndex.empty(DIM, "ivfpq", VectorIndexConfig(kind="ivfpq", pq_m=50))


def test_training_on_too_few_vectors_is_refused(corpus: Corpus) -> None:
    index = FaissVectorIndex.empty(DIM, "ivfpq", VectorIndexConfig(kind="ivfpq", ivf_nlist=512))
    with pytest.raises(MixragError, match=r"at least 512 training vectors .* got 300"):
        index.train(corpus.x[:300])
    with pytest.raises(RuntimeError, match="train the ivfpq index"):
        index.add(corpus.ids[:1], corpus.x[:1])
