"""Prompt study: which prompt makes each bundled generator answer SQuAD best (gold paragraph).

Reading-comprehension upper bound of the generator alone: every question is asked
with the paragraph it was written about (no retrieval), decoded greedily with the
generator's KV-cache step decoding (``TransformersGenerator.generate``: stop at EOS,
end-of-turn or newline), cleaned with ``prompts.clean_answer`` and scored with the
official SQuAD normalisation (EM, token F1, max over references).

Variants (``mixrag.generator.prompts.PromptFormat``):
  plain          the model's own chat prompt: passage + question, nothing else
  short          + a system instruction asking for the shortest span, no sentence
  short+fewshot  + three made-up worked examples as earlier chat turns
  plain+fewshot  the examples without the instruction

Usage:
  python bench/prompt_study.py --n 200 --seed 0 \
      --out bench/results/prompt_study.md --predictions .bench/prompt_study.jsonl

SQuAD v1.1 dev: CC BY-SA 4.0, Rajpurkar et al. (2016).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from mixrag.decoding import greedy_answers
from mixrag.eval.datasets import load_squad, sample
from mixrag.eval.metrics import exact_match, f1_score
from mixrag.generator import GeneratorConfig, PromptFormat, TransformersGenerator
from mixrag.generator.prompts import clean_answer
from mixrag.types import Passage

sys.path.insert(0, str(Path(__file__).parent))
from common import machine

VARIANTS = {
    "plain": PromptFormat(style="plain", few_shot=False),
    "short": PromptFormat(style="short", few_shot=False),
    "short+fewshot": PromptFormat(style="short", few_shot=True),
    "plain+fewshot": PromptFormat(style="plain", few_shot=True),
}
DATA = Path("/work/shared/data/squaddev_v1.1.json.gz")


def gold_paragraphs(path: Path) -> dict[str, Passage]:
    """The paragraph of each ``article:paragraph`` key, as load_squad keys them."""
    raw = path.read_bytes()
    obj = json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)
    out = {}
    for ai, article in enumerate(obj["data"]):
        title = article.get("title", "").replace("_", " ")
        for pi, para in enumerate(article["paragraphs"]):
            key = f"{ai}:{pi}"
            out[key] = Passage(id=key, doc_id=str(ai), title=title, text=para["context"])
    return out


def run_variant(
    gen: TransformersGenerator,
    fmt: PromptFormat,
    items: list[tuple[Any, Passage]],
    batch: int,
    max_new_tokens: int,
) -> tuple[list[dict[str, Any]], float]:
    prompts = [gen.render(fmt.passage(q.question, p)) for q, p in items]
    lengths = [len(gen.encode_prompt(p)) for p in prompts]
    # Similar lengths per batch: little padding. Results are put back in order.
    order = sorted(range(len(items)), key=lambda i: lengths[i])
    raw: dict[int, str] = {}
    start = time.perf_counter()
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        for i, text in zip(
            idx, greedy_answers(gen, [prompts[i] for i in idx], max_new_tokens), strict=True
        ):
            raw[i] = text
    seconds = time.perf_counter() - start
    rows = []
    for i, (q, _p) in enumerate(items):
        text = raw[i]
        pred = clean_answer(text)
        rows.append(
            {
                "id": q.id,
                "question": q.question,
                "answers": list(q.answers),
                "raw": text,
                "prediction": pred,
                "answer_tokens": len(raw[i]),
                "prompt_tokens": lengths[i],
                "em": exact_match(pred, q.answers),
                "f1": f1_score(pred, q.answers),
            }
        )
    return rows, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-0.5b"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8, help="questions decoded together")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32", help="the generator's (float32, bfloat16)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=Path("bench/results/prompt_study.md"))
    ap.add_argument("--predictions", type=Path, default=Path(".bench/prompt_study.jsonl"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    log = logging.getLogger("prompt_study")

    paragraphs = gold_paragraphs(args.data)
    questions = sample(load_squad(args.data), args.n, args.seed)
    items = [(q, paragraphs[q.gold_doc_keys[0]]) for q in questions]
    args.predictions.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    examples: dict[str, list[dict[str, Any]]] = {}
    with args.predictions.open("w") as pred_file:
        for model in args.models:
            gen = TransformersGenerator(GeneratorConfig(model=model, dtype=args.dtype)).load()
            for name in args.variants:
                rows, seconds = run_variant(
                    gen, VARIANTS[name], items, args.batch, args.max_new_tokens
                )
                for r in rows:
                    pred_file.write(json.dumps({"model": model, "variant": name, **r}) + "\n")
                pred_file.flush()
                res = {
                    "model": model,
                    "variant": name,
                    "em": 100 * statistics.fmean(r["em"] for r in rows),
                    "f1": 100 * statistics.fmean(r["f1"] for r in rows),
                    "s_per_q": seconds / len(rows),
                    "answer_tokens": statistics.fmean(r["answer_tokens"] for r in rows),
                    "prompt_tokens": statistics.fmean(r["prompt_tokens"] for r in rows),
                }
                results.append(res)
                examples[f"{model} / {name}"] = rows[:4]
                log.info("%s", res)
                write_report(args, results, examples)
            del gen


def write_report(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    examples: dict[str, list[dict[str, Any]]],
) -> None:
    m = machine()
    lines = [
        "# Prompt study: bundled generators on SQuAD v1.1 dev with the gold paragraph",
        "",
        f"{args.n} questions sampled with `mixrag.eval.datasets.sample(seed={args.seed})`; each is "
        "asked with the paragraph it was written about (reading-comprehension upper bound, no "
        "retrieval). Greedy decoding with the generator's KV-cache step decoding, at most "
        f"{args.max_new_tokens} new tokens, stopping at EOS / end-of-turn / newline; the answer "
        "is cleaned by `prompts.clean_answer` and scored with the official SQuAD normalisation "
        "(EM, token F1, max over references).",
        "",
        "| model | prompt variant | EM | F1 | s / question | answer tokens | prompt tokens |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['em']:.1f} | {r['f1']:.1f} | "
            f"{r['s_per_q']:.2f} | {r['answer_tokens']:.1f} | {r['prompt_tokens']:.0f} |"
        )
    lines += [
        "",
        "s / question: wall time of prompt + greedy decoding, questions batched "
        f"{args.batch} at a time; the shared prompt prefix (chat header, instruction, few-shot "
        "turns) is computed once and reused from the generator's prefix KV cache. "
        "Prompt tokens include that prefix.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}, torch threads "
        f"{m['torch_threads']}, {m['date']}. Shared with other jobs: timings are noisy.",
        "",
        "Command:",
        "",
        "```",
        "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "```",
        "",
        "## First predictions per variant",
        "",
    ]
    for key, rows in examples.items():
        lines.append(f"**{key}**")
        lines.append("")
        for r in rows:
            raw = r["raw"].replace("\n", "\\n").replace("|", "/")
            lines.append(
                f"- Q: {r['question']} — gold: {r['answers'][0]!r} — raw: {raw!r} "
                f"— EM {r['em']:.0f} F1 {r['f1']:.2f}"
            )
        lines.append("")
    lines.append("SQuAD v1.1 dev: CC BY-SA 4.0, Rajpurkar, Zhang, Lopyrev, Liang (EMNLP 2016).")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
