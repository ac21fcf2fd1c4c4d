"""Crash loop: SIGKILL a busy ``mixrag serve`` at seeded random moments, check what survived.

    python bench/crash_loop.py --kills 20 --seed 0 --out bench/results/crash_loop.json

The way trusted stores test themselves: keep the server writing, kill it without
warning, restart it, and check the promises it made before it died.

* Every acknowledged upload (a 2xx answer) is there, at the version acknowledged, and
  searchable by its marker word; every acknowledged delete is gone (its marker finds
  nothing); an operation whose answer the kill cut off happened wholly or not at all.
* No document is half there: each file holds all its passages, of one version, each
  with a vector of the index's dimension, and SQLite's FTS index agrees with them.
* The FAISS file of the store's generation, when there is one, holds exactly the
  stored row ids and gives the same top-k as an exact inner-product search over the
  stored vectors. A missing one (a kill between the store's commit and the FAISS
  save) is counted as stale: the server must rebuild it on restart.
* After the restart, ``uploads/`` holds exactly the indexed uploads, with the stored
  sha256 (the upload recovery ran), and the API lists the same documents.

Each cycle starts the server (a subprocess in its own process group, loopback, a free
port, ``--threads 1``), checks it against the model of what was acknowledged, then
two writer threads upload, replace and delete small text files (every passage of a
version carries the version's marker word) while a third searches (dense, BM25,
hybrid). After a seeded random delay the process group gets SIGKILL. The folder left
behind is copied and checked in this process (SQLite, FAISS and numpy; no model),
then the next cycle restarts the server on it. Each file name belongs to one writer,
so at most one operation per name is in doubt at a kill; when the check has seen
which way it went, that becomes the acknowledged state.

Temporary files of atomic writes a kill cut short are counted; one still there after
the next cycle's writes is a violation (the next writer deletes them).

Writes JSON: kills survived, violations (each naming its cycle), what the kills cut
(operations in flight, and whether they had happened), stale FAISS files, temporary
files left, acknowledged operations, searches, timings. Exits 1 on a violation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import faiss
import httpx
import numpy as np

from common import machine, write_json

REPO = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"\bmk\d+v\d+\b")
WRITERS = 2
# Plain words (about one encoder token each): a version's 240 words are always cut
# into the same number of passages, so a count that differs means a half document.
VOCAB = (  # noqa: SIM905 (a list literal would take 65 lines)
    "river mill wool blanket fire town bridge stone market winter summer harvest field "
    "road train station clock tower school garden orchard apple bread baker letter paper "
    "lamp window door roof chimney valley hill forest lake boat island harbour ship sail "
    "engine wheel copper iron steel glass cotton silk merchant farmer teacher doctor "
    "painter song dance story museum library castle village city north south east west"
).split()
WORDS_PER_VERSION = 240
PASSAGES_PER_VERSION = 3  # 240 words, at most 100 a passage, balanced: 3 × 80
MARKER_EVERY = 12  # a marker in every passage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def version_text(rng: random.Random, marker: str) -> str:
    """240 words in three paragraphs, every 12th the version's marker."""
    words = [
        marker if i % MARKER_EVERY == 0 else rng.choice(VOCAB) for i in range(WORDS_PER_VERSION)
    ]
    third = WORDS_PER_VERSION // 3
    return "\n\n".join(" ".join(words[i : i + third]) for i in range(0, len(words), third))


# -- the model of what the server acknowledged ---------------------------------------


@dataclass
class Name:
    """One upload name, written by one writer thread only.

    state:   marker of the version the server last acknowledged; None = absent.
    doubt:   (operation, the state it would leave) whose answer a kill cut off.
    checked: the API search check has seen this state (unchecked ones are searched).
    gone:    markers of versions replaced or deleted, not yet checked to be unfindable.
    """

    name: str
    state: str | None = None
    doc_id: str | None = None
    doubt: tuple[str, str | None] | None = None
    checked: bool = False
    gone: list[str] = field(default_factory=list)


@dataclass
class Model:
    names: dict[str, Name] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    serial: Counter[int] = field(default_factory=Counter)  # versions made per writer
    acked: Counter[str] = field(default_factory=Counter)
    searches: int = 0
    errors: list[str] = field(default_factory=list)

    def owned(self, writer: int) -> list[Name]:
        with self.lock:
            return [n for n in self.names.values() if n.name.startswith(f"w{writer}-")]

    def live(self) -> list[Name]:
        with self.lock:
            return [n for n in self.names.values() if n.state is not None]

    def markers(self) -> list[str]:
        """The markers of the versions acknowledged now."""
        with self.lock:
            return [n.state for n in self.names.values() if n.state is not None]

    def error(self, what: str) -> None:
        with self.lock:
            if len(self.errors) < 50:
                self.errors.append(what)


# -- load --------------------------------------------------------------------------


def writer(
    model: Model, w: int, client: httpx.Client, rng: random.Random, stop: threading.Event
) -> None:
    """Upload, replace and delete this writer's files until the server dies or ``stop``."""
    while not stop.is_set():
        mine = model.owned(w)
        live = [n for n in mine if n.state is not None]
        r = rng.random()
        if not live or (r < 0.45 and len(live) < 25):
            with model.lock:
                model.serial[w] += 1
                target = Name(f"w{w}-{model.serial[w]}.txt")
                model.names[target.name] = target
            op = "upload"
        else:
            target = rng.choice(live)
            op = "replace" if r < 0.75 else "delete"
        after: str | None = None
        if op != "delete":
            with model.lock:
                model.serial[w] += 1
                after = f"mk{w}v{model.serial[w]}"
        target.doubt = (op, after)
        try:
            if op == "delete":
                resp = client.delete(f"/v1/documents/{target.doc_id}")
            else:
                assert after is not None
                body = {"name": target.name, "text": version_text(rng, after)}
                resp = client.post("/v1/documents", json=body)
        except httpx.TransportError:
            return  # killed: the operation stays in doubt
        if not resp.is_success:
            model.error(f"{op} {target.name}: {resp.status_code} {resp.text[:200]}")
            return  # in doubt too: the check settles it
        with model.lock:
            if target.state is not None:
                target.gone.append(target.state)
            target.state, target.doubt, target.checked = after, None, False
            if op == "delete":
                target.doc_id = None
            else:
                doc = resp.json()["document"]
                target.doc_id = doc["id"]
                if doc["passages"] != PASSAGES_PER_VERSION:
                    model.errors.append(
                        f"{target.name} was cut into {doc['passages']} passages; the loop "
                        f"assumes {PASSAGES_PER_VERSION}: adjust PASSAGES_PER_VERSION"
                    )
            model.acked[op] += 1


def searcher(model: Model, client: httpx.Client, rng: random.Random, stop: threading.Event) -> None:
    """Search live markers (any method) until the server dies or ``stop``."""
    while not stop.is_set():
        q = rng.choice(model.markers() or VOCAB)
        method = rng.choice(["dense", "bm25", "hybrid"])
        try:
            resp = client.get("/v1/search", params={"q": q, "k": 5, "method": method})
        except httpx.TransportError:
            return
        if not resp.is_success:
            model.error(f"search {q!r} ({method}): {resp.status_code} {resp.text[:200]}")
            return
        with model.lock:
            model.searches += 1


# -- the server ---------------------------------------------------------------------


def start_server(index: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    # the server runs this checkout's code, whatever the environment has installed
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p
    )
    cmd = [
        sys.executable,
        *("-m", "mixrag.cli.main", "--threads", "1", "serve"),
        *("--index", str(index), "--port", str(port), "--model", "smollm2-135m"),
    ]
    with open(log, "ab") as out:
        # its own process group, so SIGKILL reaches anything it starts
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}; see the server log")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"the server was not ready after {timeout:.0f} s")


def kill(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# -- checks -------------------------------------------------------------------------


def same_top_k(D: np.ndarray, I: np.ndarray, exact: np.ndarray, ids: np.ndarray) -> bool:
    """FAISS's (D, I) for one query [k] against exact scores [n] of row ids [n]: the same
    ids in order, allowing only swaps between scores equal to float32 rounding."""
    k = len(I)
    order = np.argsort(-exact, kind="stable")[:k]
    if np.array_equal(ids[order], I):
        return True
    score_of = dict(zip(ids.tolist(), exact.tolist(), strict=True))
    if any(i not in score_of for i in I.tolist()):
        return False
    mine = np.array([score_of[i] for i in I.tolist()])
    return bool(np.allclose(mine, D, atol=1e-5) and np.allclose(mine, exact[order], atol=1e-5))


Row = tuple[int, str, str, bytes]  # a passage: row id, file, text, vector


def read_rows(conn: sqlite3.Connection) -> tuple[int, list[Row]]:
    """The store's generation and its passages in row-id order."""
    gen = int(conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])
    rows = conn.execute(
        "SELECT p.rowid, d.file, p.text, p.vector FROM passages p "
        "JOIN documents d ON p.doc_id = d.id ORDER BY p.rowid"
    ).fetchall()
    return gen, rows


def check_faiss(folder: Path, gen: int, rows: list[Row], rng: np.random.Generator) -> list[str]:
    """The FAISS file of generation ``gen`` against the stored passages ``rows``: the
    same row ids, and the top-k of 12 queries equal to exact search over the vectors."""
    path = folder / f"vectors-{gen}.faiss"
    if not path.exists():
        return [f"no FAISS file for the store's generation {gen}"]
    index = faiss.read_index(str(path))
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    held = np.sort(faiss.vector_to_array(faiss.downcast_index(index).id_map))
    if index.ntotal != len(rows) or not np.array_equal(held, ids):
        return [f"FAISS holds {index.ntotal} vectors, the store {len(rows)} passages"]
    if not rows:
        return []
    vecs = np.frombuffer(b"".join(r[3] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    noise = rng.standard_normal((12, vecs.shape[1]))
    near = vecs[rng.integers(len(vecs), size=4)] + 0.05 * noise[:4]  # near stored ones
    q = np.concatenate([near, noise[4:]]).astype(np.float32)  # [12, D]
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    k = min(10, len(rows))
    D, I = index.search(q, k)
    exact = q.astype(np.float64) @ vecs.astype(np.float64).T  # [12, n]
    for j in range(len(q)):
        if not same_top_k(D[j], I[j], exact[j], ids):
            return [f"FAISS top-{k} differs from exact search (query {j})"]
    return []


def check_folder(
    folder: Path, model: Model, rng: np.random.Generator, stats: Counter[str]
) -> list[str]:
    """Violations in an index folder left by a kill (a copy: this may write to it).

    Settles the model: an operation in doubt becomes what the store shows.
    """
    bad: list[str] = []
    manifest = json.loads((folder / "mixrag.json").read_text())  # torn JSON raises
    conn = sqlite3.connect(folder / "store.sqlite")
    try:
        gen, rows = read_rows(conn)
        try:
            conn.execute(
                "INSERT INTO passages_fts(passages_fts, rank) VALUES('integrity-check', 1)"
            )
        except sqlite3.DatabaseError as e:
            bad.append(f"the FTS index disagrees with the passages: {e}")
        empty = conn.execute(
            "SELECT d.file FROM documents d WHERE NOT EXISTS "
            "(SELECT 1 FROM passages p WHERE p.doc_id = d.id)"
        ).fetchall()
        bad += [f"{Path(f).name}: a document without passages" for (f,) in empty]
        files = [path for (path,) in conn.execute("SELECT path FROM files")]
    finally:
        conn.close()
    dim = int(manifest.get("encoder", {}).get("dim") or 0)
    texts: dict[str, list[str]] = {}
    for _rowid, file, text, blob in rows:
        texts.setdefault(file, []).append(text)
        if dim and len(blob) != 4 * dim:
            bad.append(f"{Path(file).name}: a vector of {len(blob)} bytes, not {4 * dim}")
    found: dict[str, str | None] = {}  # name: the marker of the version stored
    for path in files:
        name = Path(path).name
        markers = {m for t in texts.get(path, []) for m in MARKER.findall(t)}
        n = len(texts.get(path, []))
        marked = all(MARKER.search(t) for t in texts.get(path, []))
        if len(markers) != 1 or not marked or n != PASSAGES_PER_VERSION:
            bad.append(f"{name}: half there: {n} passages, markers {sorted(markers)}")
        found[name] = min(markers) if markers else None

    # what was acknowledged is there; what was in doubt happened wholly or not at all
    with model.lock:
        bad += [
            f"{name}: in the store but never uploaded" for name in set(found) - set(model.names)
        ]
        for n in model.names.values():
            now = found.get(n.name)
            allowed = {n.state} | ({n.doubt[1]} if n.doubt else set())
            if now not in allowed:
                what = (
                    "acknowledged delete undone" if n.state is None else "acknowledged upload lost"
                )
                bad.append(f"{n.name}: {what}: holds {now}, acknowledged {n.state}")
            if n.doubt is not None:
                applied = now == n.doubt[1]
                stats["cut_ops"] += 1
                stats["cut_ops_applied" if applied else "cut_ops_not_applied"] += 1
                if not applied and n.doubt[1] is not None:
                    n.gone.append(n.doubt[1])  # a version never stored: never found
            if now != n.state:
                if n.state is not None:
                    n.gone.append(n.state)
                n.state, n.checked = now, False
                n.doc_id = None  # learnt from the API after the restart
            n.doubt = None

    # the FAISS file of this generation is the store, exactly
    if not (folder / f"vectors-{gen}.faiss").exists():
        stats["faiss_stale"] += 1
        return bad
    stats["faiss_current"] += 1
    return bad + check_faiss(folder, gen, rows, rng)


def check_served(
    client: httpx.Client, index: Path, model: Model, rng: np.random.Generator
) -> list[str]:
    """Violations in a restarted server: the FAISS file it loaded (rebuilt if it was
    stale), the documents it lists, uploads/ on disk, and marker searches (new states
    found in full, replaced and deleted ones not at all)."""
    conn = sqlite3.connect(f"file:{index / 'store.sqlite'}?mode=ro", uri=True)
    try:
        gen, rows = read_rows(conn)
    finally:
        conn.close()
    bad = [f"after the restart: {v}" for v in check_faiss(index, gen, rows, rng)]
    listed = {
        d["name"]: d for d in client.get("/v1/documents").raise_for_status().json()["documents"]
    }
    uploads = index.resolve() / "uploads"
    on_disk = {p.name for p in uploads.iterdir() if p.is_file()} if uploads.is_dir() else set()
    leftovers = [p.name for p in uploads.glob(".*") if p.name != ".backup"]
    if (uploads / ".backup").is_dir():
        leftovers += [f".backup/{p.name}" for p in (uploads / ".backup").iterdir()]
    if leftovers:
        bad.append(f"uploads/ keeps {sorted(leftovers)} after recovery")
    with model.lock:
        names = list(model.names.values())
    live = {n.name for n in names if n.state is not None}
    if set(listed) != live:
        extra, missing = sorted(set(listed) - live), sorted(live - set(listed))
        bad.append(f"the API lists {extra} extra, {missing} missing")
    if on_disk != live:
        bad.append(
            f"uploads/ holds {sorted(on_disk - live)} extra, {sorted(live - on_disk)} missing"
        )
    for name in live & set(listed) & on_disk:
        if sha256(uploads / name) != listed[name]["sha256"]:
            bad.append(f"{name}: the file in uploads/ is not the version indexed")
    for n in names:
        if n.name in listed:
            n.doc_id = listed[n.name]["id"]
        todo = ([n.state] if n.state is not None and not n.checked else []) + n.gone
        for marker in todo:
            hits = client.get("/v1/search", params={"q": marker, "k": 10, "method": "bm25"})
            with_marker = [
                h for h in hits.raise_for_status().json()["hits"] if marker in h["passage"]["text"]
            ]
            if marker == n.state:
                want = listed.get(n.name, {}).get("passages")
                if len(with_marker) != want or any(
                    Path(h["passage"]["source"]).name != n.name for h in with_marker
                ):
                    bad.append(f"{n.name}: {marker} finds {len(with_marker)} passages, not {want}")
            elif with_marker:
                bad.append(f"{n.name}: {marker} was replaced or deleted but is still found")
        n.checked, n.gone = True, []
    return bad


# -- the loop -----------------------------------------------------------------------


def busy_then_kill(
    base: str, proc: subprocess.Popen[bytes], model: Model, seed: str, delay: float
) -> None:
    """Writers and a searcher on the server for ``delay`` seconds, then SIGKILL."""
    stop = threading.Event()
    clients = [httpx.Client(base_url=base, timeout=60) for _ in range(WRITERS + 1)]
    threads = [
        threading.Thread(
            target=writer, args=(model, w, clients[w], random.Random(f"{seed}/{w}"), stop)
        )
        for w in range(WRITERS)
    ]
    threads.append(
        threading.Thread(
            target=searcher, args=(model, clients[-1], random.Random(f"{seed}/s"), stop)
        )
    )
    for t in threads:
        t.start()
    time.sleep(delay)
    kill(proc)
    stop.set()
    for t in threads:
        t.join()
    for c in clients:
        c.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-busy", type=float, default=0.2, help="seconds of load before a kill")
    ap.add_argument("--max-busy", type=float, default=2.0)
    ap.add_argument("--work", type=Path, default=None, help="folder for the index [a temp dir]")
    ap.add_argument("--ready-timeout", type=float, default=300.0)
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/crash_loop.json")
    args = ap.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="mixrag-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    index, copy, log = work / "idx", work / "after-kill", work / "server.log"
    rng = random.Random(args.seed)
    # the kill moments depend on the seed alone, not on how the load went
    delays = [rng.uniform(args.min_busy, args.max_busy) for _ in range(args.kills)]
    queries = np.random.default_rng(args.seed)  # of the FAISS check
    model = Model()
    stats: Counter[str] = Counter()
    violations: list[str] = []
    starts: list[float] = []
    t_start = time.time()
    for cycle in range(args.kills + 1):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        t0 = time.time()
        proc = start_server(index, port, log)
        try:
            wait_ready(base, proc, args.ready_timeout)
            starts.append(time.time() - t0)
            with httpx.Client(base_url=base, timeout=60) as client:
                violations += [
                    f"cycle {cycle}: {v}" for v in check_served(client, index, model, queries)
                ]
            if cycle == args.kills:
                break
            temps = {p.name for p in index.glob(".*.tmp")}  # what earlier kills left
            writes = sum(model.acked.values())
            busy_then_kill(base, proc, model, f"{args.seed}/{cycle}", delays[cycle])
            stats["kills"] += 1
        finally:
            if proc.poll() is None:
                kill(proc)
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(index, copy)
        violations += [f"cycle {cycle}: {v}" for v in check_folder(copy, model, queries, stats)]
        left = {p.name for p in copy.glob(".*.tmp")}
        stats["temp_files_left_by_kills"] += len(left - temps)
        if temps & left and sum(model.acked.values()) > writes:
            violations.append(f"cycle {cycle}: {sorted(temps & left)} outlived a write")
    elapsed = time.time() - t_start

    live = model.live()
    result: dict[str, Any] = {
        "machine": machine(),
        "command": "python bench/crash_loop.py " + " ".join(sys.argv[1:]),
        "settings": {
            "kills": args.kills,
            "seed": args.seed,
            "busy_s": [args.min_busy, args.max_busy],
            "kill_after_s": [round(d, 2) for d in delays],
            "writers": WRITERS,
            "searchers": 1,
            "server_threads": 1,
        },
        "kills_survived": stats["kills"] if not violations else 0,
        "violations": violations,
        "errors": model.errors,
        "cut": {
            "ops_in_doubt": stats["cut_ops"],
            "applied": stats["cut_ops_applied"],
            "not_applied": stats["cut_ops_not_applied"],
        },
        "faiss_after_kill": {"current": stats["faiss_current"], "stale": stats["faiss_stale"]},
        # the next write deletes them (a violation above when it did not)
        "temp_files_left_by_kills": stats["temp_files_left_by_kills"],
        "acknowledged": dict(model.acked),
        "searches": model.searches,
        "files_at_end": len(live),
        "startup_s": {
            "mean": round(float(np.mean(starts)), 2),
            "max": round(max(starts), 2),
        },
        "elapsed_s": round(elapsed, 1),
    }
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if violations else 0)


if __name__ == "__main__":
    main()
