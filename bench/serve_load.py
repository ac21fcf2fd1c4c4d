"""Load test of ``mixrag serve``: N concurrent clients on loopback for a bounded time.

    python bench/serve_load.py --clients 4 --duration 120 --model smollm2-135m \
        --out bench/results/serve_load.json

Starts the server as a subprocess over the demo index (built into .bench/demo-index
if missing, as bench/answer.py does), with a token so auth is on the measured path.
Each client loops until the deadline, picking ``/v1/search`` or ``/v1/ask`` at random
(``--ask-share``), the ask streamed (Server-Sent Events) or not (``--stream-share``),
over questions sampled from the demo corpus's own SQuAD questions. Reports, per
endpoint: requests, throughput, latency p50/p95 (for streamed asks also time to the
first token event; for plain asks also the server's own time, ``timings.total``, which
leaves out the wait in the generator's queue), and errors (any non-2xx status or
transport failure); and the server's resident memory (VmRSS) sampled every second, at
the start (after warm-up) and the end. Clients start no request after the deadline;
``elapsed_s`` includes finishing the ones in flight, and throughput is over it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx

from common import machine, percentiles, write_json
from mixrag.eval.datasets import load_squad, sample
from mixrag.index.folder import Index

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process in MiB (Linux /proc), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def ensure_index(path: Path, corpus: Path) -> None:
    index = Index.open(path, create=True)
    if index.store.counts()["passages"] == 0:
        print(f"building {path} from {corpus}", file=sys.stderr)
        index.add([corpus])
    index.close()


def start_server(args: argparse.Namespace, port: int, token_file: Path) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "mixrag.cli.main",
        "--threads",
        str(args.threads),
        "serve",
        "--index",
        str(args.index),
        "--model",
        args.model,
        "--port",
        str(port),
        "--token-file",
        str(token_file),
        "--max-waiting",
        str(max(8, 2 * args.clients)),
        *args.serve_args.split(),
    ]
    log = open(args.server_log, "w")  # noqa: SIM115 (lives as long as the server)
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)


def wait_ready(base: str, proc: subprocess.Popen[str], timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; see the server log")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit("server did not become ready")


class Recorder:
    """Latencies and errors per endpoint, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.first_token: list[float] = []
        self.served: list[float] = []  # server-side seconds of plain asks
        self.errors: dict[str, int] = defaultdict(int)
        self.error_samples: list[str] = []

    def ok(self, endpoint: str, seconds: float) -> None:
        with self.lock:
            self.latency[endpoint].append(seconds)

    def fail(self, endpoint: str, what: str) -> None:
        with self.lock:
            self.errors[endpoint] += 1
            if len(self.error_samples) < 10:
                self.error_samples.append(f"{endpoint}: {what}")


def one_request(
    client: httpx.Client, rng: random.Random, questions: list[str], args: argparse.Namespace
) -> tuple[str, float, float | None, str | None]:
    """(endpoint, seconds, extra or None, error or None); extra is the time to the first
    token of a streamed ask, the server's own time of a plain one."""
    q = rng.choice(questions)
    t0 = time.perf_counter()
    if rng.random() >= args.ask_share:
        r = client.get("/v1/search", params={"q": q, "k": args.k, "method": args.method})
        err = None if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"
        return "search", time.perf_counter() - t0, None, err
    body = {"question": q, "mode": rng.choice(args.modes), "k": args.k, "method": args.method}
    if rng.random() >= args.stream_share:
        r = client.post("/v1/ask", json=body)
        if r.status_code != 200:
            return "ask", time.perf_counter() - t0, None, f"{r.status_code} {r.text[:200]}"
        return "ask", time.perf_counter() - t0, float(r.json()["timings"]["total"]), None
    first: float | None = None
    final = False
    with client.stream("POST", "/v1/ask", json={**body, "stream": True}) as r:
        if r.status_code != 200:
            r.read()
            return "ask-stream", time.perf_counter() - t0, None, f"{r.status_code} {r.text[:200]}"
        event = ""
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
                if event == "token" and first is None:
                    first = time.perf_counter() - t0
                elif event == "answer":
                    final = True
                elif event == "error":
                    return "ask-stream", time.perf_counter() - t0, first, "error event"
    err = None if final else "stream ended without an answer event"
    return "ask-stream", time.perf_counter() - t0, first, err


def client_loop(
    seed: int,
    base: str,
    token: str,
    questions: list[str],
    args: argparse.Namespace,
    deadline: float,
    rec: Recorder,
) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=args.request_timeout) as client:
        while time.time() < deadline:
            try:
                endpoint, seconds, first, err = one_request(client, rng, questions, args)
            except httpx.HTTPError as e:
                rec.fail("transport", repr(e))
                continue
            if err is None:
                rec.ok(endpoint, seconds)
                if first is not None:
                    with rec.lock:
                        (rec.first_token if endpoint == "ask-stream" else rec.served).append(first)
            else:
                rec.fail(endpoint, err)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    ap.add_argument("--warmup", type=int, default=3, help="asks before the clock starts")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--index", type=Path, default=REPO / ".bench/demo-index")
    ap.add_argument("--corpus", type=Path, default=REPO / "data/demo/squad-dev-demo.json")
    ap.add_argument("--modes", default="rag-sequence,rag-token,concat")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--method", default="dense")
    ap.add_argument("--ask-share", type=float, default=0.3, help="fraction of requests that ask")
    ap.add_argument("--stream-share", type=float, default=0.5, help="fraction of asks streamed")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--request-timeout", type=float, default=300.0)
    ap.add_argument("--server-log", type=Path, default=Path("/tmp/mixrag-serve-load.log"))
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/serve_load.json")
    ap.add_argument("--plot", type=Path, default=None, help="PNG of the server's RSS over time")
    ap.add_argument(
        "--serve-args",
        default="",
        help="more `mixrag serve` options, e.g. '--dtype bfloat16 --max-batch 1 "
        "--passage-cache-mb 0' (today's baseline: no cache, no batching)",
    )
    args = ap.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    ensure_index(args.index, args.corpus)
    questions = [q.question for q in sample(load_squad(args.corpus), args.questions, seed=0)]
    token = secrets.token_urlsafe(24)
    token_file = Path(f"/tmp/mixrag-load-token-{os.getpid()}")
    token_file.write_text(token)
    token_file.chmod(0o600)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t_start = time.time()
    proc = start_server(args, port, token_file)
    try:
        wait_ready(base, proc)
        startup_s = time.time() - t_start
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300
        ) as c:
            for i in range(args.warmup):
                mode = args.modes[i % len(args.modes)]
                r = c.post("/v1/ask", json={"question": questions[i], "mode": mode, "k": args.k})
                r.raise_for_status()
            info = c.get("/v1/info").json()

        rss: list[tuple[float, float]] = []
        stop = threading.Event()
        t0 = time.time()

        def sample_rss() -> None:
            while not stop.is_set():
                value = rss_mib(proc.pid)
                if value is not None:
                    rss.append((round(time.time() - t0, 1), round(value, 1)))
                stop.wait(1.0)

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        rec = Recorder()
        deadline = t0 + args.duration
        clients = [
            threading.Thread(
                target=client_loop, args=(i, base, token, questions, args, deadline, rec)
            )
            for i in range(args.clients)
        ]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        elapsed = time.time() - t0
        time.sleep(1.0)
        stop.set()
        sampler.join()
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as c:
            info_end = c.get("/v1/info").json()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        token_file.unlink(missing_ok=True)

    endpoints = {
        name: {
            "requests": len(lat),
            "throughput_per_s": len(lat) / elapsed,
            "latency_s": percentiles(lat),
            "errors": rec.errors.get(name, 0),
        }
        for name, lat in sorted(rec.latency.items())
    }
    if rec.first_token:
        endpoints.setdefault("ask-stream", {})["first_token_s"] = percentiles(rec.first_token)
    if rec.served:
        endpoints.setdefault("ask", {})["server_time_s"] = percentiles(rec.served)
    total = sum(len(v) for v in rec.latency.values())
    values = [v for _, v in rss]
    result: dict[str, Any] = {
        "machine": machine(),
        "command": "python bench/serve_load.py " + " ".join(sys.argv[1:]),
        "settings": {
            "clients": args.clients,
            "duration_s": args.duration,
            "model": args.model,
            "modes": args.modes,
            "k": args.k,
            "method": args.method,
            "ask_share": args.ask_share,
            "stream_share": args.stream_share,
            "server_threads": args.threads,
            "index_passages": info["index"]["passages"],
            "serve_args": args.serve_args,
            "generator": {
                k: v for k, v in info["generator"].items() if k not in ("batches", "engine")
            },
        },
        "batches": info_end["generator"].get("batches"),
        "engine": info_end["generator"].get("engine"),
        "passage_cache_end": info_end["generator"].get("passage_cache"),
        "startup_s": round(startup_s, 1),
        "elapsed_s": round(elapsed, 1),
        "requests": total,
        "throughput_per_s": total / elapsed,
        "errors": sum(rec.errors.values()),
        "error_samples": rec.error_samples,
        "endpoints": endpoints,
        "rss_mib": {
            "start": values[0] if values else None,
            "end": values[-1] if values else None,
            "max": max(values) if values else None,
            "series": rss,
        },
    }
    # Memory steadiness: resident memory by quarter of the run (after warm-up).
    if values:
        q = max(1, len(values) // 4)
        result["rss_mib"]["quarter_max"] = [
            max(values[i : i + q]) for i in range(0, len(values), q)
        ][:4]
    write_json(args.out, result)
    if args.plot is not None and rss:
        plot_rss(rss, args.plot, f"{args.clients} clients, {args.model}")
    summary = {k: v for k, v in result.items() if k not in ("machine", "rss_mib")}
    summary["rss_mib"] = {k: v for k, v in result["rss_mib"].items() if k != "series"}
    print(json.dumps(summary, indent=2))


def plot_rss(rss: list[tuple[float, float]], path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([t for t, _ in rss], [v for _, v in rss], lw=1)
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"mixrag serve under load: {title}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
