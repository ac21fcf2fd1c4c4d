from __future__ import annotations

from pathlib import Path

import numpy as np

from mixrag.index import FaissVectorIndex, VectorIndexConfig


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_returns_exact_inner_products_best_first() -> None:
    x, q = unit_rows(300, 16, 0), unit_rows(5, 16, 1)
    ids = np.arange(1000, 1300, dtype=np.int64)
    index = FaissVectorIndex.build(ids, x, 16, VectorIndexConfig(kind="flat"))
    D, I = index.search(q, 10)
    exact = q @ x.T
    for b in range(5):
        order = np.argsort(-exact[b])[:10]
        assert I[b].tolist() == (ids[order]).tolist()
        np.testing.assert_allclose(D[b], exact[b, order], rtol=1e-5)


def test_hnsw_agrees_with_exact_search() -> None:
    x, q = unit_rows(500, 32, 2), unit_rows(20, 32, 3)
    ids = np.arange(500, dtype=np.int64)
    flat = FaissVectorIndex.build(ids, x, 32, VectorIndexConfig(kind="flat"))
    hnsw = FaissVectorIndex.build(ids, x, 32, VectorIndexConfig(kind="hnsw"))
    assert hnsw.kind == "hnsw"
    _, I_exact = flat.search(q, 10)
    D_h, I_h = hnsw.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I_exact, I_h, strict=True)])
    assert recall >= 0.95
    np.testing.assert_allclose(D_h, np.einsum("bd,bkd->bk", q, x[I_h]), rtol=1e-5)


def test_auto_kind_switches_at_threshold() -> None:
    cfg = VectorIndexConfig(hnsw_threshold=100)
    assert cfg.kind_for(99) == "flat" and cfg.kind_for(100) == "hnsw"


def test_remove_and_save_load(tmp_path: Path) -> None:
    x = unit_rows(50, 8, 4)
    ids = np.arange(50, dtype=np.int64)
    index = FaissVectorIndex.build(ids, x, 8, VectorIndexConfig(kind="flat"))
    assert index.remove(np.array([0, 1, 2])) == 3
    _, I = index.search(x[:3], 50)
    assert not set(I.ravel().tolist()) & {0, 1, 2}
    index.save(tmp_path / "v.faiss")
    again = FaissVectorIndex.load(tmp_path / "v.faiss", "flat", index.config)
    assert again.ntotal == 47
    np.testing.assert_array_equal(again.search(x[5:6], 5)[1], index.search(x[5:6], 5)[1])


def test_search_on_empty_index_pads_with_minus_one() -> None:
    index = FaissVectorIndex.empty(8, "flat", VectorIndexConfig())
    _, I = index.search(unit_rows(2, 8, 5), 3)
    assert I.shape == (2, 3) and (I == -1).all()
