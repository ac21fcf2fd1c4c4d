"""The generator's CUDA path, checked on a GPU machine that cannot receive model weights.

    python bench/cuda_check.py --model-dir DIR --out cuda_check.json

The GPU machine lent to this project takes at most 64 MiB a transfer and reaches no
model hub, so Qwen2.5-0.5B's 1 GB of weights cannot get there. This builds the model's
architecture from its config (``DIR`` holds config.json and the tokenizer files of the
converted bundled model) with seeded random weights on ``--device`` and checks what
does not depend on the weights being trained:

1. ``logprobs`` [B, K, T] with the passage cache on (cold, then warm) against off, float32;
2. a decode state on the shared head against one whose rows hold copies, through
   re-ordered steps (float32);
3. thorough RAG-Sequence with the cache on against off: the same tokens (float32);
4. the speed of a K = 5 thorough RAG-Sequence decode in bfloat16: no cache against a
   warm cache, median of ``--repeats`` (random weights ramble, so every decode runs to
   ``--max-new-tokens``: a per-step figure, not an answer latency), and the warm cache
   with the head copied into every row (``shared_head=False``).

Answers and EM need the trained weights and are not measured here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from mixrag.decoding import DecodingConfig, rag_sequence_thorough
from mixrag.eval.datasets import load_squad, sample
from mixrag.generator import GeneratorConfig, PassageCache, TransformersGenerator
from mixrag.generator.prompts import PromptFormat
from mixrag.types import Passage

REPO = Path(__file__).resolve().parent.parent


def build(model_dir: Path, device: str, dtype: str, seed: int) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model = model.to(device).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def generator(
    model: Any, tok: Any, device: str, dtype: str, cache: PassageCache | None = None, **kw: Any
) -> TransformersGenerator:
    cfg = GeneratorConfig(model="qwen2.5-0.5b", device=device, dtype=dtype, **kw)
    if cache is None and cfg.passage_cache_mb:
        cache = PassageCache()
    return TransformersGenerator(cfg, model=model, tokenizer=tok, passage_cache=cache).load()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    device = args.device
    out: dict[str, Any] = {"torch": torch.__version__, "device": device}
    if device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name(0)
    qs = sample(load_squad(REPO / "data/demo/squad-dev-demo.json"), args.questions, seed=0)
    demo = json.loads((REPO / "data/demo/squad-dev-demo.json").read_text())["data"]
    paragraphs = [(a["title"], p["context"]) for a in demo for p in a["paragraphs"]][:5]
    # the K = 5 passages every question gets
    passages = [Passage(f"p{i}", f"d{i}", t, c) for i, (t, c) in enumerate(paragraphs)]
    fmt = PromptFormat(few_shot=True)

    def prompts(gen: TransformersGenerator, questions: list[str]) -> list[list[str]]:
        return [[gen.render(fmt.passage(q, p), passage=p) for p in passages] for q in questions]

    # 1-3: float32 equalities
    model, tok = build(args.model_dir, device, "float32", 0)
    off = generator(model, tok, device, "float32", passage_cache_mb=0)
    on = generator(model, tok, device, "float32")
    questions = [q.question for q in qs]
    ps = prompts(on, questions)
    answers = [on.encode_answer(q.answers[0]) for q in qs]
    ref = off.logprobs(ps, answers).logprobs
    cold = on.logprobs(ps, answers).logprobs
    warm = on.logprobs(ps, answers).logprobs
    out["logprobs_max_abs_diff"] = {
        "cold": float((cold - ref).abs().max()),
        "warm": float((warm - ref).abs().max()),
    }
    copies = generator(model, tok, device, "float32", on.passage_cache, shared_head=False)
    a, b = on.start(ps[0]), copies.start(ps[0])
    diffs = [float((a.logprobs() - b.logprobs()).abs().max())]
    for rows in ([0, 0, 1, 2, 2], [4, 3, 0], [2, 2, 1, 0]):
        tokens = a.logprobs()[rows].argmax(-1)
        a.advance(tokens, torch.tensor(rows, device=model.device))
        b.advance(tokens, torch.tensor(rows, device=model.device))
        diffs.append(float((a.logprobs() - b.logprobs()).abs().max()))
    out["shared_head"] = {"shares_head": a.shares_head, "max_abs_diff": max(diffs)}
    log_prior = torch.log_softmax(torch.linspace(1.0, -1.0, 5), dim=0).expand(len(qs), -1)
    dcfg = DecodingConfig(max_new_tokens=args.max_new_tokens, num_beams=1, num_return=1)
    got = rag_sequence_thorough(on, ps, log_prior, dcfg, eos_ids=on.eos_ids)
    exp = rag_sequence_thorough(off, ps, log_prior, dcfg, eos_ids=off.eos_ids)
    out["thorough_same_tokens"] = sum(
        g.nbest[0].token_ids == e.nbest[0].token_ids for g, e in zip(got, exp, strict=True)
    )
    out["thorough_questions"] = len(qs)
    del model, off, on, copies

    # 4: bfloat16 speed, off against warm, one question at a time
    model, tok = build(args.model_dir, device, "bfloat16", 0)
    slow = generator(model, tok, device, "bfloat16", passage_cache_mb=0)
    fast = generator(model, tok, device, "bfloat16")
    fast.warm(passages)
    copied = generator(model, tok, device, "bfloat16", fast.passage_cache, shared_head=False)
    one_prior = log_prior[:1]
    ways = (("off", slow), ("warm", fast), ("warm_copied_head", copied))
    times: dict[str, list[float]] = {name: [] for name, _ in ways}
    for r in range(args.repeats + 1):
        for q in questions:
            for name, gen in ways:
                sync(device)
                t0 = time.perf_counter()
                rag_sequence_thorough(gen, prompts(gen, [q]), one_prior, dcfg, eos_ids=())
                sync(device)
                if r:  # the first round warms kernels up
                    times[name].append(time.perf_counter() - t0)
    out["bf16_thorough_k5"] = {
        name: {"p50_s": statistics.median(t), "n": len(t)} for name, t in times.items()
    }
    out["bf16_off_over_warm"] = statistics.median(
        o / w for o, w in zip(times["off"], times["warm"], strict=True)
    )
    args.out.write_text(json.dumps(out, indent=2))
    json.dump(out, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
