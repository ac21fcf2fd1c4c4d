"""What the OpenAI-compatible chat endpoint costs over ``/v1/ask``, measured in one run.

    python bench/chat_overhead.py --model qwen2.5-0.5b --questions 20 --repeats 5 \
        --modes rag-sequence,rag-token --out bench/results/chat_overhead.json

Starts ``mixrag serve`` as a subprocess over the demo index (built into
.bench/demo-index if missing, as bench/serve_load.py does), with a token, and asks the
same questions through both endpoints from one client (httpx, so the client library is
the same on both sides): each question once through ``/v1/ask`` first (not timed: it
fills the passage KV cache), then ``--repeats`` rounds of one ``/v1/ask`` and one
``/v1/chat/completions`` (``model`` = ``mixrag-<mode>``, the question as the only user
message), in an order that alternates from round to round, so neither endpoint always
meets a warmer server. With ``--stream`` each round also streams both (``/v1/ask``'s
Server-Sent Events to its ``answer`` event, the chat chunks to ``[DONE]``).

Reported per mode and way (plain / streamed): the median latency of each endpoint, the
median and interquartile range of the paired difference chat - ask (same question,
same round), the same relative to ask, and the difference outside answering: wall time
minus the server's own ``timings.total`` of the answer, chat minus ask, which leaves
out the decoding's noise and keeps what the chat endpoint adds (reading the messages,
the token count, formatting, the extension field). Every pair's answers are compared:
``mismatches`` counts chat answers that differ from ``/v1/ask``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx

from common import machine, write_json
from mixrag.eval.datasets import load_squad, sample
from serve_load import ensure_index, free_port, wait_ready

REPO = Path(__file__).resolve().parent.parent


def lscpu_model() -> str:
    """The CPU's name as ``lscpu`` gives it ("" where there is no lscpu)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return ""


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
        "-k",
        str(args.k),
        *args.serve_args.split(),
    ]
    log = open(args.server_log, "w")  # noqa: SIM115 (lives as long as the server)
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)


def ask_plain(c: httpx.Client, question: str, mode: str) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    r = c.post("/v1/ask", json={"question": question, "mode": mode})
    seconds = time.perf_counter() - t0
    r.raise_for_status()
    return seconds, r.json()


def chat_plain(c: httpx.Client, question: str, mode: str) -> tuple[float, dict[str, Any]]:
    body = {"model": f"mixrag-{mode}", "messages": [{"role": "user", "content": question}]}
    t0 = time.perf_counter()
    r = c.post("/v1/chat/completions", json=body)
    seconds = time.perf_counter() - t0
    r.raise_for_status()
    return seconds, r.json()["mixrag"]


def _sse_data(c: httpx.Client, path: str, body: dict[str, Any]) -> tuple[float, list[str]]:
    """Seconds to the end of a streamed response, and its ``data:`` payloads."""
    data = []
    t0 = time.perf_counter()
    with c.stream("POST", path, json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data: "):
                data.append(line[6:])
    return time.perf_counter() - t0, data


def ask_stream(c: httpx.Client, question: str, mode: str) -> tuple[float, dict[str, Any]]:
    seconds, data = _sse_data(c, "/v1/ask", {"question": question, "mode": mode, "stream": True})
    return seconds, json.loads(data[-1])  # the answer event


def chat_stream(c: httpx.Client, question: str, mode: str) -> tuple[float, dict[str, Any]]:
    body = {
        "model": f"mixrag-{mode}",
        "messages": [{"role": "user", "content": question}],
        "stream": True,
    }
    seconds, data = _sse_data(c, "/v1/chat/completions", body)
    assert data[-1] == "[DONE]", data[-1]
    return seconds, json.loads(data[-2])["mixrag"]  # the finish chunk


def quartiles(values: list[float]) -> dict[str, float]:
    q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
    return {"median": statistics.median(values), "q1": q1, "q3": q3, "n": len(values)}


def summarise(pairs: list[dict[str, float]]) -> dict[str, Any]:
    diff = [p["chat"] - p["ask"] for p in pairs]
    outside = [(p["chat"] - p["chat_total"]) - (p["ask"] - p["ask_total"]) for p in pairs]
    ask_p50 = statistics.median(p["ask"] for p in pairs)
    return {
        "ask_s": statistics.median(p["ask"] for p in pairs),
        "chat_s": statistics.median(p["chat"] for p in pairs),
        "diff_s": quartiles(diff),
        "diff_relative": statistics.median(diff) / ask_p50 if ask_p50 > 0 else None,
        "outside_answering_s": quartiles(outside),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--index", type=Path, default=REPO / ".bench/demo-index")
    ap.add_argument("--corpus", type=Path, default=REPO / "data/demo/squad-dev-demo.json")
    ap.add_argument("--modes", default="rag-sequence,rag-token")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds per question")
    ap.add_argument("--stream", action="store_true", help="also time both endpoints streamed")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--server-log", type=Path, default=Path("/tmp/mixrag-chat-overhead.log"))
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/chat_overhead.json")
    ap.add_argument("--serve-args", default="", help="more `mixrag serve` options")
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    ensure_index(args.index, args.corpus)
    picked = sample(load_squad(args.corpus), args.questions, seed=args.seed)
    questions = [q.question for q in picked]
    token = secrets.token_urlsafe(24)
    token_file = Path(f"/tmp/mixrag-chat-token-{os.getpid()}")
    token_file.write_text(token)
    token_file.chmod(0o600)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ways = {"plain": (ask_plain, chat_plain)}
    if args.stream:
        ways["stream"] = (ask_stream, chat_stream)
    proc = start_server(args, port, token_file)
    pairs: dict[str, list[dict[str, float]]] = {f"{m}/{w}": [] for m in modes for w in ways}
    mismatches = dict.fromkeys(pairs, 0)
    try:
        wait_ready(base, proc)
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=auth, timeout=600) as c:
            for mode in modes:
                for q in questions:  # fills the passage KV cache: not timed
                    ask_plain(c, q, mode)
            for r in range(args.repeats):
                for i, q in enumerate(questions):
                    for mode in modes:
                        for way, (ask, chat) in ways.items():
                            first_ask = (r + i) % 2 == 0
                            calls = [(ask, "ask"), (chat, "chat")]
                            got = {}
                            for fn, name in calls if first_ask else calls[::-1]:
                                got[name] = fn(c, q, mode)
                            (t_ask, a), (t_chat, b) = got["ask"], got["chat"]
                            key = f"{mode}/{way}"
                            mismatches[key] += a["answer"] != b["answer"]
                            pairs[key].append(
                                {
                                    "ask": t_ask,
                                    "chat": t_chat,
                                    "ask_total": a["timings"]["total"],
                                    "chat_total": b["timings"]["total"],
                                }
                            )
                print(f"round {r + 1}/{args.repeats} done", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(60)
        token_file.unlink(missing_ok=True)

    result = {
        "machine": {**machine(), "lscpu_model_name": lscpu_model()},
        "settings": {
            "model": args.model,
            "k": args.k,
            "questions": len(questions),
            "repeats": args.repeats,
            "modes": modes,
            "serve_args": args.serve_args,
            "threads": args.threads,
        },
        "results": {
            key: {**summarise(p), "mismatches": mismatches[key]} for key, p in pairs.items()
        },
        "pairs": pairs,
    }
    write_json(args.out, result)
    print(f"machine: {result['machine']['lscpu_model_name'] or result['machine']['cpu']}")
    print("| mode / way | ask p50 s | chat p50 s | chat - ask (IQR) ms | outside answering ms |")
    print("|---|---|---|---|---|")
    for key, s in result["results"].items():
        d, o = s["diff_s"], s["outside_answering_s"]
        print(
            f"| {key} | {s['ask_s']:.3f} | {s['chat_s']:.3f} | {1e3 * d['median']:+.1f} "
            f"({1e3 * d['q1']:+.1f} to {1e3 * d['q3']:+.1f}) | {1e3 * o['median']:+.1f} |"
        )


if __name__ == "__main__":
    main()
