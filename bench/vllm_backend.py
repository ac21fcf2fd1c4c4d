"""The generator on a vLLM server against the in-process one, same box, same questions.

    python bench/vllm_backend.py --n 20 --out bench/results/vllm_backend-qwen.json

Starts vLLM's CPU build (``.venv-vllm``, scripts/setup_vllm.sh) on loopback serving the
same converted weights, then for seeded demo questions, K = 5:

* per mode (RAG-Sequence thorough and fast, concat, closed-book), ``ask`` latency p50 /
  p95 in process (float32, passage cache warm for the questions' passages: what
  ``mixrag ask`` does on a warm index) and on the server (float32), one question at a time;
  EM and answers the two agree on;
* concurrency: the same questions asked by ``--clients`` threads at once against the
  server (it batches requests from all of them), questions a second against one at a time;
* the server's request count and tokens per question, from what mixrag sent.

Both sides share the machine's cores: the in-process runs happen while the server idles.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from tests.vllmserver import local_vllm

from common import machine, percentiles, write_json
from mixrag.eval.datasets import load_squad, sample
from mixrag.eval.metrics import exact_match
from mixrag.explain import passage_prompts
from mixrag.generator import GeneratorConfig, TransformersGenerator
from mixrag.generator.models import resolve
from mixrag.generator.vllm import VLLMGenerator
from mixrag.generator.vllm_client import VLLMClient, VLLMConfig
from mixrag.index.folder import Index
from mixrag.rag import RAG, RAGConfig

REPO = Path(__file__).resolve().parent.parent
MODES = {
    "rag-sequence": RAGConfig(mode="rag-sequence", k=5),
    "rag-sequence-fast": RAGConfig(mode="rag-sequence", k=5, sequence_decoding="fast"),
    "concat": RAGConfig(mode="concat", k=5),
    "closed-book": RAGConfig(mode="closed-book", k=5),
}


class CountingClient(VLLMClient):
    """Counts the requests and the prompt tokens mixrag sends."""

    requests = 0
    prompt_tokens = 0

    def post(self, path: str, body: dict, *, root: bool = False):  # type: ignore[no-untyped-def, override]
        if path == "/completions":
            CountingClient.requests += 1
            CountingClient.prompt_tokens += len(body["prompt"])
        return super().post(path, body, root=root)


def timed(rag: RAG, questions: list[str], mode: RAGConfig) -> tuple[list[float], list[str]]:
    times, texts = [], []
    for q in questions:
        t0 = time.perf_counter()
        a = rag.ask_batch([q], mode=mode.mode)[0]
        times.append(time.perf_counter() - t0)
        texts.append(a.text)
    return times, texts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--index", default=str(REPO / ".bench/demo-index"))
    ap.add_argument("--corpus", default=str(REPO / "data/demo/squad-dev-demo.json"))
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default=",".join(MODES), help=f"some of {', '.join(MODES)}")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    chosen = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(MODES))
    if unknown:
        ap.error(f"--modes: unknown {', '.join(unknown)}; choose from {', '.join(MODES)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)

    index = Index.open(args.index, create=True)
    if index.store.counts()["passages"] == 0:
        index.add([args.corpus])
    data = sample(load_squad(args.corpus), args.n, seed=args.seed)
    questions = [q.question for q in data]
    golds = [q.answers for q in data]
    local = TransformersGenerator(GeneratorConfig(model=args.model)).load()
    retriever = index.retriever()
    hits = RAG(retriever, local).retrieve(questions, 5)
    local.warm(list({h.passage.id: h.passage for hs in hits for h in hs}.values()))
    results: dict = {"machine": machine(), "model": args.model, "n": len(questions), "modes": {}}

    folder, _ = resolve(args.model)
    with local_vllm(folder, args.model, threads=args.threads) as url:
        remote_cfg = VLLMConfig(url, concurrency=16)
        remote = VLLMGenerator.open(local.config, remote_cfg)
        remote.client.close()
        remote.client = CountingClient(remote_cfg)
        for name in chosen:
            mode = MODES[name]
            here = RAG(retriever, local, mode)
            there = RAG(retriever, remote, mode)
            timed(here, questions[:1], mode)  # warm-up: the head memo, the server's caches
            timed(there, questions[:1], mode)
            t_here, a_here = timed(here, questions, mode)
            before = (CountingClient.requests, CountingClient.prompt_tokens)
            t_there, a_there = timed(there, questions, mode)
            sent = (CountingClient.requests - before[0], CountingClient.prompt_tokens - before[1])
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(there.ask, questions))
            concurrent_s = time.perf_counter() - t0
            row = {
                "in_process_s": percentiles(t_here),
                "vllm_s": percentiles(t_there),
                "ratio_vllm_over_in_process_median": statistics.median(
                    b / a for a, b in zip(t_here, t_there, strict=True)
                ),
                "em_in_process": 100
                * statistics.mean(exact_match(a, g) for a, g in zip(a_here, golds, strict=True)),
                "em_vllm": 100
                * statistics.mean(exact_match(a, g) for a, g in zip(a_there, golds, strict=True)),
                "same_answers": sum(a == b for a, b in zip(a_here, a_there, strict=True)),
                "requests_per_question": sent[0] / len(questions),
                "prompt_tokens_per_question": sent[1] / len(questions),
                "vllm_questions_per_s_one_at_a_time": len(questions) / sum(t_there),
                f"vllm_questions_per_s_{args.clients}_clients": len(questions) / concurrent_s,
            }
            if name == "rag-sequence":  # the [B, K, T] log-probs of the same answers
                hs = here.retrieve(questions, 5)
                prompts = passage_prompts(local, questions, hs, 5)
                ids = [[*local.encode_answer(a), local.end_id] for a in a_here]
                gap = remote.logprobs(prompts, ids).logprobs - local.logprobs(prompts, ids).logprobs
                row["logprob_max_abs_diff_nats"] = float(gap.abs().max())
            results["modes"][name] = row
            logging.info("%s: %s", name, row)
            write_json(args.out, results)
        remote.close()


if __name__ == "__main__":
    main()
