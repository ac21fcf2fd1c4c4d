"""In-process load on the server's generator engine: N threads asking through ``Service``.

    python bench/engine_load.py --duration 150 --out engine_load.json
    # A/B of two checkouts on one machine, interleaved (worktrees of each commit):
    PYTHONPATH=/tmp/a/src python bench/engine_load.py --duration 150 --out a1.json

What ``bench/serve_load.py`` measures without HTTP, searches or a second process: each
thread retrieves (dense, K = 5) and answers a question of the demo corpus in a mode
drawn at random, again and again until the deadline, through ``Service.submit_answer``,
so asks share the engine as a server's do (continuous batching). Reports asks/s, the
asks by mode, the engine's counters, and each kind of engine call (a prefill of which
decoder, a scoring pass of what) with its count and seconds: where the generator
thread's time goes. Meant for comparing versions quickly (150 s a run); the figures to
quote come from serve_load.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from common import machine
from mixrag.eval.datasets import load_squad, sample
from mixrag.generator import engine as engine_module
from mixrag.server.config import ServerConfig
from mixrag.server.params import resolve
from mixrag.server.service import Service

REPO = Path(__file__).resolve().parent.parent
# frames that say nothing about which work an engine call is
_PLUMBING = {"run", "<lambda>", "_start", "logprobs", "wrapper", "timed"}


def label_calls(record: dict[str, list[float]]) -> None:
    """Time every function the engine runs, under the chain of its callers' names."""
    original = engine_module.StepEngine.run

    def run(self: Any, fn: Callable[..., Any], *args: Any) -> Any:
        stack = [f.name for f in traceback.extract_stack(limit=9)[:-1]]
        label = "/".join(n for n in stack if n not in _PLUMBING)[-100:]

        def timed(*a: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*a)
            finally:
                record[label].append(time.perf_counter() - began)

        return original(self, timed, *args)

    engine_module.StepEngine.run = run  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=150.0)
    ap.add_argument("--threads", type=int, default=4, help="asking threads (clients)")
    ap.add_argument("--index", type=Path, default=REPO / ".bench/demo-index")
    ap.add_argument("--corpus", type=Path, default=REPO / "data/demo/squad-dev-demo.json")
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument(
        "--beams", type=int, default=None, help="RAG-Sequence's beams (default: its own)"
    )
    ap.add_argument("--modes", default="rag-sequence,rag-token,concat")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)

    calls: dict[str, list[float]] = collections.defaultdict(list)
    label_calls(calls)
    config = ServerConfig(index=args.index, model=args.model, dtype=args.dtype, beams=args.beams)
    service = Service.open(config)
    questions = [q.question for q in sample(load_squad(args.corpus), 200, seed=0)]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    done: collections.Counter[str] = collections.Counter()
    errors: list[str] = []
    deadline = time.time() + args.duration

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.time() < deadline:
            params = resolve(config, rng.choice(questions), mode=rng.choice(modes), k=args.k)
            try:
                service.submit_answer(params, service.retrieve(params)).result()
                done[params.mode] += 1
            except Exception as exc:  # counted, reported
                errors.append(repr(exc))

    began = time.time()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - began
    assert service.engine is not None
    result = {
        "machine": machine(),
        "command": "python " + " ".join(sys.argv),
        "elapsed_s": round(elapsed, 1),
        "asks": sum(done.values()),
        "asks_per_s": round(sum(done.values()) / elapsed, 3),
        "by_mode": dict(done),
        "errors": len(errors),
        "error_samples": errors[:5],
        "engine": service.engine.stats.as_dict(),
        "calls": {
            k: {"n": len(v), "seconds": round(sum(v), 2), "mean_s": round(sum(v) / len(v), 3)}
            for k, v in sorted(calls.items(), key=lambda kv: -sum(kv[1]))
        },
    }
    service.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("elapsed_s", "asks", "asks_per_s", "by_mode")}))


if __name__ == "__main__":
    main()
