"""Compressed index (issue 7): flat vs HNSW vs IVF-PQ, with and without exact re-ranking.

    python bench/compressed.py --sizes 100000,1000000 --threads 1 --hnsw-max 100000 \
        --out bench/results/compressed.json

Vectors as in bench/scaling.py: each synthetic passage is a real all-MiniLM-L6-v2
embedding of a SQuAD dev paragraph (2,067 seeds) plus Gaussian noise of norm ~0.6,
re-normalised; queries are real embeddings of 200 SQuAD dev questions. Recall@10 is
against exact search. Every index keys the vectors by row ids 1..N, as the store does.

Two phases per size. **Build** (this process): the flat index (its per-query latency,
and the exact top 10 every recall is measured against), HNSW, and IVF-PQ trained on
the seeded sample the library draws, then a sweep of nprobe × re-rank depth (vectors
from a numpy memmap). The vectors, the store and the IVF-PQ file are kept under
``.bench/compressed-<N>/``. **Serve** (a fresh process per way of loading, so RSS is
that of serving alone): the saved IVF-PQ file loaded into memory or memory-mapped,
searched without re-ranking, re-ranked from the ``SqlitePassageStore`` file (the real
store code: ``SqlitePassageStore.vectors``, one ``IN (...)`` query per search) and from a
numpy memmap of the same vectors; 50 other questions warm up first. The files are
warm in the page cache (the machine has the RAM), so these are not cold-disk latencies.
``--serve-only`` re-runs the serve phase on the kept files.

Memory: the serialised index (what it holds in RAM); RSS growth while building (flat,
HNSW); in the serve phase, the anonymous (private) RSS the loaded index adds and the
file-backed pages the 200 queries touched.

Queries run one at a time, top 10, on ``--threads`` FAISS/torch threads.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import faiss
import numpy as np
import psutil
import torch

from common import machine, percentiles, write_json
from mixrag.index import FaissVectorIndex, VectorIndexConfig
from mixrag.index.vectors import sample_rows
from mixrag.store.sqlite import SqlitePassageStore
from scaling import CACHE, REPO, seeds_and_queries, synthetic

DIM = 384
K = 10
Search = Callable[[np.ndarray], np.ndarray]  # one query [1, D] -> ids [K]


def mem() -> tuple[int, int]:
    """(RSS, file-backed RSS) of this process in bytes."""
    m = psutil.Process().memory_info()
    return m.rss, m.shared


def run_queries(search: Search, q: np.ndarray, truth: np.ndarray | None) -> dict:
    for v in q[:5]:
        search(v[None, :])
    times, found = [], []
    for v in q:
        t0 = time.perf_counter()
        ids = search(v[None, :])
        times.append((time.perf_counter() - t0) * 1000)
        found.append(ids)
    row: dict = {"latency_ms": percentiles(times)}
    if truth is not None:
        row["recall@10_vs_exact"] = recall(np.array(found), truth)
    row["_ids"] = np.array(found)
    return row


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's exact top K among the K found."""
    return float(
        np.mean(
            [len(set(a.tolist()) & set(b.tolist())) / K for a, b in zip(found, truth, strict=True)]
        )
    )


def faiss_search(index: FaissVectorIndex) -> Search:
    return lambda v: index.search(v, K)[1][0]


def write_store(path: Path, x: np.ndarray) -> float:
    """A SQLite store holding x as the vectors of passages with row ids 1..N; seconds taken."""
    t0 = time.perf_counter()
    store = SqlitePassageStore(path)
    with store.transaction():
        store.conn.execute("INSERT INTO files VALUES ('bench', '', 0, 0, 0)")
        store.conn.execute("INSERT INTO documents VALUES ('d', 'bench', 'd', '', '{}')")
        store.conn.executemany(
            "INSERT INTO passages(rowid, id, doc_id, position, title, text, metadata, vector) "
            "VALUES (?, ?, 'd', ?, '', '', '{}', ?)",
            ((i + 1, str(i + 1), i, x[i].tobytes()) for i in range(len(x))),
        )
    store.checkpoint()
    store.close()
    return time.perf_counter() - t0


def measure_size(n: int, seeds: np.ndarray, q: np.ndarray, args: argparse.Namespace) -> dict:
    work = CACHE / f"compressed-{n}"
    work.mkdir(parents=True, exist_ok=True)
    x = synthetic(n, seeds)
    ids = np.arange(1, n + 1, dtype=np.int64)
    out: dict = {"n": n, "load_average_start": os.getloadavg()}
    args.results["sizes"][str(n)] = out  # written as it fills

    # -- the stored vectors the re-ranking reads -----------------------------------------
    store_path = work / "store.sqlite"
    if not store_path.exists():
        out["store_write_s"] = write_store(store_path, x)
    store = SqlitePassageStore(store_path)
    assert store.counts()["passages"] == n
    mm_path = work / "vectors.f32"
    if not mm_path.exists():
        x.tofile(mm_path)
    mm = np.memmap(mm_path, dtype=np.float32, mode="r", shape=(n, DIM))

    def from_sqlite(rowids: np.ndarray) -> np.ndarray:  # what Index gives FaissVectorIndex
        return store.vectors(rowids.tolist(), DIM)

    def from_memmap(rowids: np.ndarray) -> np.ndarray:
        return np.asarray(mm[rowids - 1])

    out["stored_vectors"] = {
        "sqlite_bytes_per_passage": os.path.getsize(store_path) / n,
        "memmap_bytes_per_passage": os.path.getsize(mm_path) / n,
    }

    # -- exact ---------------------------------------------------------------------------
    cfg = VectorIndexConfig(kind="ivfpq")
    before, _ = mem()
    t0 = time.perf_counter()
    flat = FaissVectorIndex.empty(DIM, "flat", cfg)
    flat.add(ids, x)
    row = {"build_s": time.perf_counter() - t0, "rss_growth_bytes": mem()[0] - before}
    row["index_bytes"] = len(faiss.serialize_index(flat.index))
    row |= run_queries(faiss_search(flat), q, None)
    truth = row.pop("_ids")
    out["flat"] = row
    del flat
    logging.info("n=%d flat %s", n, out["flat"])
    write_json(args.out, args.results)

    # -- HNSW ----------------------------------------------------------------------------
    if n <= args.hnsw_max:
        hcfg = VectorIndexConfig()
        before, _ = mem()
        t0 = time.perf_counter()
        hnsw = FaissVectorIndex.empty(DIM, "hnsw", hcfg)
        hnsw.add(ids, x)
        row = {"build_s": time.perf_counter() - t0, "rss_growth_bytes": mem()[0] - before}
        row["index_bytes"] = len(faiss.serialize_index(hnsw.index))
        row |= run_queries(faiss_search(hnsw), q, truth)
        row.pop("_ids")
        row["params"] = hcfg.build_params("hnsw") | hcfg.search_params("hnsw")
        out["hnsw"] = row
        del hnsw
        logging.info("n=%d hnsw %s", n, out["hnsw"])
        write_json(args.out, args.results)

    # -- IVF-PQ: train on the seeded sample, add everything ---------------------------------
    t0 = time.perf_counter()
    ivf = FaissVectorIndex.empty(DIM, "ivfpq", cfg, n)
    rows = sample_rows(n, cfg.train_size(n), cfg.ivf_train_seed)
    ivf.train(x[rows])
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ivf.add(ids, x)
    add_s = time.perf_counter() - t0
    ivf_path = work / "ivfpq.faiss"
    ivf.save(ivf_path)
    out["ivfpq"] = {
        "params": ivf_params(cfg, n),
        "train_s": train_s,
        "add_s": add_s,
        "build_s": train_s + add_s,
        "index_bytes": os.path.getsize(ivf_path),
    }
    del x

    # nprobe × re-rank depth, vectors from the memmap (the recall does not depend on where
    # the vectors come from; the serve phase times the SQLite path)
    plain = FaissVectorIndex(ivf.index, "ivfpq", cfg)  # no stored vectors: PQ's own order
    sweep = []
    for nprobe in (8, 16, 32, 64):
        ivf.index.nprobe = nprobe
        for factor in (0, 5, 10, 20, 40):
            if factor:
                c = VectorIndexConfig(kind="ivfpq", rerank_factor=factor)
                s = FaissVectorIndex(ivf.index, "ivfpq", c, stored=from_memmap)
            else:
                s = plain
            r = _strip(run_queries(faiss_search(s), q, truth))
            sweep.append({"nprobe": nprobe, "rerank_factor": factor, **r})
    out["ivfpq sweep"] = sweep
    store.close()
    del ivf, plain
    serve(n, args)
    out["load_average_end"] = os.getloadavg()
    return out


def exact_top(mm: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row ids (1-based) of the exact top K of each query over the memmapped vectors."""
    flat = faiss.IndexFlatIP(DIM)
    D_all, I_all = [], []
    for i in range(0, len(mm), 100_000):
        flat.reset()
        flat.add(np.ascontiguousarray(mm[i : i + 100_000]))
        D, I = flat.search(q, K)
        D_all.append(D)
        I_all.append(I + i + 1)
    D, I = np.concatenate(D_all, axis=1), np.concatenate(I_all, axis=1)
    return np.take_along_axis(I, np.argsort(-D, axis=1, kind="stable")[:, :K], axis=1)


def serve(n: int, args: argparse.Namespace) -> None:
    """The serve phase: one fresh process per way of loading; results merged into ``out``."""
    import json
    import subprocess

    out = args.results["sizes"].setdefault(str(n), {"n": n})
    for mode in ("memory", "mmap"):
        cmd = [sys.executable, __file__, "--probe", str(n), "--probe-mode", mode]
        cmd += ["--threads", str(args.threads), "--queries", str(args.queries)]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows = json.loads(done.stdout.strip().splitlines()[-1])
        for name, row in rows.items():
            if name == "ivfpq":  # keep what the build phase measured
                built = out.get(name, {})
                keep = ("train_s", "add_s", "build_s", "index_bytes")
                row = {k: built[k] for k in keep if k in built} | row
                row["params"] = ivf_params(VectorIndexConfig(kind="ivfpq"), n)
            out[name] = row
        logging.info("n=%d serve %s %s", n, mode, rows)
        write_json(args.out, args.results)


def probe(n: int, mode: str, n_queries: int) -> dict:
    """Load the saved IVF-PQ (into memory or memory-mapped) in this fresh process and
    time the searches; print-ready rows keyed like the results file."""
    work = CACHE / f"compressed-{n}"
    _, all_q = seeds_and_queries(n_queries + 50)
    q, warm = all_q[:n_queries], all_q[n_queries:]
    mm = np.memmap(work / "vectors.f32", dtype=np.float32, mode="r", shape=(n, DIM))
    store = SqlitePassageStore(work / "store.sqlite")

    def from_sqlite(rowids: np.ndarray) -> np.ndarray:  # what Index gives FaissVectorIndex
        return store.vectors(rowids.tolist(), DIM)

    def from_memmap(rowids: np.ndarray) -> np.ndarray:
        return np.asarray(mm[rowids - 1])

    cfg = VectorIndexConfig(kind="ivfpq", mmap=mode == "mmap")
    tag = ", mmap" if mode == "mmap" else ""
    # Memory first, before anything else maps or allocates: the index alone, then the
    # file-backed pages that searching it touches (no re-ranking yet).
    rss0, file0 = mem()
    ivf = FaissVectorIndex.load(work / "ivfpq.faiss", "ivfpq", cfg, trained_for=n)
    rss1, file1 = mem()
    for v in warm:
        ivf.search(v[None, :], K)
    first = run_queries(faiss_search(ivf), q, None)
    _, file2 = mem()
    first["serve_params"] = cfg.search_params("ivfpq")
    first["anon_rss_growth_on_load_bytes"] = (rss1 - file1) - (rss0 - file0)
    first["file_rss_after_queries_bytes"] = file2 - file0
    truth = exact_top(mm, q)
    first["recall@10_vs_exact"] = recall(first.pop("_ids"), truth)
    rows = {"ivfpq" + tag: first}
    variants = {"+rerank": from_sqlite, "+rerank (memmap vectors)": from_memmap}
    for suffix, stored in variants.items():
        ivf.stored = stored
        for v in warm:
            ivf.search(v[None, :], K)
        rows["ivfpq" + suffix + tag] = _strip(run_queries(faiss_search(ivf), q, truth))
    return rows


def ivf_params(cfg: VectorIndexConfig, n: int) -> dict:
    return {
        "nlist": cfg.nlist(n),
        "pq_m": cfg.pq_m,
        "pq_nbits": cfg.pq_nbits,
        "train_size": cfg.train_size(n),
    }


def _strip(row: dict) -> dict:
    row.pop("_ids", None)
    return row


def main() -> None:
    import json

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--hnsw-max",
        type=int,
        default=10**9,
        help="build HNSW only up to this size (its build is the slowest)",
    )
    ap.add_argument("--serve-only", action="store_true", help="re-run the serve phase only")
    ap.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--probe-mode", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(REPO / "bench/results/compressed.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    if args.probe:
        print(json.dumps(probe(args.probe, args.probe_mode, args.queries)))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    command = "python bench/compressed.py " + " ".join(sys.argv[1:])
    if args.serve_only:
        args.results = json.loads(Path(args.out).read_text())
        args.results.setdefault("serve_commands", []).append(command)
        args.results["serve_machine"] = machine() | {"faiss_threads": args.threads}
        for n in (int(s) for s in args.sizes.split(",")):
            serve(n, args)
        return
    seeds, q = seeds_and_queries(args.queries)
    args.results = {
        "machine": machine() | {"faiss_threads": args.threads, "faiss": faiss.__version__},
        "command": command,
        "sizes": {},
    }
    for n in (int(s) for s in args.sizes.split(",")):
        measure_size(n, seeds, q, args)
        write_json(args.out, args.results)


if __name__ == "__main__":
    main()
