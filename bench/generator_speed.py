"""Generator speed: batched [B, K, T] scoring and KV-cache step decoding of the bundled models.

Scoring: B questions x K SQuAD dev paragraphs (the gold one and K-1 others from the
same article), each question's first reference answer (+ end-of-turn) as y, with
the default prompt format (instruction + few-shot turns). Three ways:
  batched+prefix  ``TransformersGenerator.logprobs`` (one call, shared prefix KV reused)
  batched         the same with ``share_prefix=False``
  naive           one row per forward pass, full-vocabulary log-softmax at every position
Decoding: ``start`` on N prompts then ``advance`` steps (ms per step, all N rows).

Usage:
  python bench/generator_speed.py --threads 1 --out bench/results/generator_speed.md
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from mixrag.eval.datasets import load_squad, sample
from mixrag.generator import GeneratorConfig, TransformersGenerator

sys.path.insert(0, str(Path(__file__).parent))
from common import machine
from prompt_study import DATA, gold_paragraphs


def naive_logprobs(
    gen: TransformersGenerator, prompts: list[list[str]], answers: list[list[int]]
) -> None:
    """The textbook loop: one forward per (question, passage), full log-softmax."""
    with torch.inference_mode():
        for row, y in zip(prompts, answers, strict=True):
            for p in row:
                ids = gen.encode_prompt(p) + y
                gen.model(torch.tensor([ids])).logits.float().log_softmax(-1)


def timed(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-0.5b"])
    ap.add_argument("--b", type=int, default=4)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="best of this many runs")
    ap.add_argument("--out", type=Path, default=Path("bench/results/generator_speed.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    paragraphs = gold_paragraphs(DATA)
    questions = sample(load_squad(DATA), args.b, seed=1)
    lines = [
        "# Generator speed (CPU)",
        "",
        f"Scoring: B={args.b} SQuAD dev questions x K={args.k} paragraphs (gold + others of "
        "its article), default prompt format (instruction + few-shot turns), y = first "
        "reference answer + end-of-turn. Best of "
        f"{args.repeat} runs. Decoding: `start` on N prompts, then {args.steps} `advance` steps.",
        "",
        "| model | scoring | seconds | rows / s | prompt tokens / s |",
        "|---|---|---:|---:|---:|",
    ]
    decode_lines = [
        "",
        "| model | N rows | start (s) | ms / step (all rows) |",
        "|---|---:|---:|---:|",
    ]
    for name in args.models:
        gen = TransformersGenerator(GeneratorConfig(model=name)).load()
        plain = TransformersGenerator(
            dataclasses.replace(gen.config, share_prefix=False),
            model=gen.model,
            tokenizer=gen.tokenizer,
        )
        fmt = gen.config.prompt_format
        prompts, answers = [], []
        for q in questions:
            gold = paragraphs[q.gold_doc_keys[0]]
            art = gold.doc_id
            others = [p for k, p in paragraphs.items() if p.doc_id == art and p is not gold]
            row = [gold, *others[: args.k - 1]]
            prompts.append([gen.render(fmt.passage(q.question, p)) for p in row])
            answers.append([*gen.encode_answer(q.answers[0]), gen.eos_ids[-1]])
        rows = args.b * args.k
        tokens = sum(len(gen.encode_prompt(p)) for r in prompts for p in r)
        gen.logprobs(prompts[:1], answers[:1])  # warm-up, fills the prefix cache
        runs = (
            ("batched + shared prefix", partial(gen.logprobs, prompts, answers)),
            ("batched, no prefix sharing", partial(plain.logprobs, prompts, answers)),
            ("naive: row by row, full log-softmax", partial(naive_logprobs, gen, prompts, answers)),
        )
        for label, fn in runs:
            s = timed(fn, args.repeat)
            lines.append(f"| {name} | {label} | {s:.2f} | {rows / s:.1f} | {tokens / s:.0f} |")
        flat = [p for r in prompts for p in r]
        for n in (1, 5, 20):
            batch = (flat * ((n + len(flat) - 1) // len(flat)))[:n]
            start = time.perf_counter()
            state = gen.start(batch)
            t_start = time.perf_counter() - start
            tok = state.logprobs().argmax(-1)
            start = time.perf_counter()
            for _ in range(args.steps):
                state.advance(tok)
                tok = state.logprobs().argmax(-1)
            ms = 1000 * (time.perf_counter() - start) / args.steps
            decode_lines.append(f"| {name} | {n} | {t_start:.2f} | {ms:.0f} |")
    m = machine()
    lines += decode_lines
    lines += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}, "
        f"{m['date']}; shared with other jobs, so timings are noisy.",
        "",
        "Command:",
        "",
        "```",
        "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "```",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
