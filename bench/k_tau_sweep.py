"""Choose K, tau and w per mode on SQuAD's training articles, by the likelihood of the
reference answers (issue 27, item 2).

For each sampled training question (``mixrag split-squad``'s split: by article,
``--dev-fraction 0.2 --seed 0``; nothing from the held-out articles) this retrieves the
top ``--candidates`` passages with ``combined`` retrieval and scores the first reference
answer y under each of them once: [C, T] log p_phi(y_i|x, z_j, y_<i). Every setting is
then computed from those numbers, without the generator:

    s_j = d(z_j)ᵀq(x) + w · bm25n(x, z_j)      the K highest s_j of the C candidates
    RAG-Sequence  log p(y|x) = logsumexp_j [log softmax(s/tau)_j + Σ_i log p_phi(y_i|x,z_j,y_<i)]
    RAG-Token     log p(y|x) = Σ_i logsumexp_j [log softmax(s/tau)_j + log p_phi(y_i|x,z_j,y_<i)]

(``mixrag.mixture``'s functions, the ones training minimises). Concat cannot be split
that way: its prompt holds all K passages, so it is scored once per K and ranking
(``--concat-ks``, dense against combined order). The output holds the mean log p(y|x)
of every (mode, K, tau, w) and the best per mode; answers' EM at the chosen settings is
then measured with ``mixrag eval`` (docs/BENCHMARKS.md).

Resumable: the per-question scores go to ``--scores`` (one JSON line per question).

Usage:
  python bench/k_tau_sweep.py --index .bench/squad-dev-index --n 120 \
      --scores .bench/k_tau_scores.jsonl --out bench/results/k_tau_sweep-squad.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, write_json
from mixrag.eval.datasets import Question, load_dataset, sample
from mixrag.explain import passage_prompts
from mixrag.mixture.marginal import rag_sequence_logprob, rag_token_logprob
from mixrag.rag import RAG
from mixrag.retriever.prior import combined_score, log_prior
from mixrag.retriever.retriever import DEFAULT_BM25_WEIGHT, DEFAULT_TAU
from mixrag.train.data import split_by_article

KS = (1, 3, 5, 10, 20)
TAUS = (0.02, 0.03, 0.05, 0.07, 0.1, 0.2, 0.5, 1.0)
WEIGHTS = (0.0, 0.2, DEFAULT_BM25_WEIGHT, 0.6, 1.0)


def collect(rag: RAG, question: Question, candidates: int, concat_ks: list[int]) -> dict[str, Any]:
    """One question's candidates (dense and bm25 parts) and y's token log-probs under each
    one alone, and y's log-prob under concat prompts of the dense and combined top K."""
    hits = rag.retriever.search_batch([question.question], k=candidates)[0]
    ids = rag.answer_ids(question.answers[0])
    prompts = passage_prompts(rag.generator, [question.question], [hits], len(hits))
    scored = rag.generator.logprobs(prompts, [ids])
    row: dict[str, Any] = {
        "id": question.id,
        "dense": [h.dense for h in hits],
        "bm25": [h.bm25 for h in hits],
        "token_logprobs": scored.logprobs[0, :, : len(ids)].tolist(),  # [C, T]
        "concat": {},
    }
    dense_order = [int(j) for j in np.argsort(-np.array(row["dense"]), kind="stable")]
    for k in concat_ks:
        seen: dict[tuple[int, ...], float] = {}
        for name, order in (("combined", list(range(len(hits)))), ("dense", dense_order)):
            chosen = tuple(order[:k])  # in rank order: concat numbers its passages
            if chosen not in seen:
                prompt = rag.single_prompt(question.question, [hits[j] for j in chosen], "concat")
                lp = rag.generator.logprobs([[prompt]], [ids]).logprobs[0, 0, : len(ids)]
                seen[chosen] = float(lp.sum())
            row["concat"][f"{name}@{k}"] = seen[chosen]
    return row


def mixture_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean log p(y|x) for RAG-Sequence and RAG-Token at every (K, tau, w), and two
    figures nearer to EM: the mean p(y|x), and the share of questions with p(y|x) > 0.5
    (y is then certainly the mixture's most likely answer)."""
    out = []
    for k, tau, w in itertools.product(KS, TAUS, WEIGHTS):
        seq, tok = [], []
        for r in rows:
            s = combined_score(np.array(r["dense"]), np.array(r["bm25"]), w)
            top = np.argsort(-s, kind="stable")[:k]
            lp = torch.tensor(np.array(r["token_logprobs"])[top])[None]  # [1, K, T]
            prior = log_prior(torch.from_numpy(s[top])[None].float(), tau)  # [1, K]
            mask = torch.ones(1, lp.shape[-1], dtype=torch.bool)
            seq.append(float(rag_sequence_logprob(prior, lp.float(), mask)[0]))
            tok.append(float(rag_token_logprob(prior, lp.float(), mask)[0]))
        entry: dict[str, Any] = {"k": k, "tau": tau, "w": w}
        for mode, values in (("rag-sequence", np.array(seq)), ("rag-token", np.array(tok))):
            entry[mode] = float(values.mean())
            entry[f"{mode} p"] = float(np.exp(values).mean())
            entry[f"{mode} p>0.5"] = float((values > np.log(0.5)).mean())
        out.append(entry)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="data/squad/squaddev_v1.1.json.gz")
    ap.add_argument("--index", default=".bench/squad-dev-index")
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--n", type=int, default=120, help="training-article questions")
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--concat-ks", default="3,5")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scores", default=".bench/k_tau_scores.jsonl")
    ap.add_argument("--out", default="bench/results/k_tau_sweep-squad.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    concat_ks = [int(k) for k in args.concat_ks.split(",") if k]
    with tempfile.TemporaryDirectory() as tmp:
        train_path, _, counts = split_by_article(args.dataset, tmp, 0.2, seed=0)
        questions = sample(load_dataset(train_path).questions, args.n, seed=0)
    scores = Path(args.scores)
    rows = [json.loads(line) for line in scores.read_text().splitlines()] if scores.exists() else []
    done = {r["id"] for r in rows}
    rag = RAG.open(args.index, model=args.model, generator_options={"dtype": args.dtype},
                   tau=DEFAULT_TAU, bm25_weight=DEFAULT_BM25_WEIGHT)  # fmt: skip
    t0 = time.perf_counter()
    todo = [q for q in questions if q.id not in done]
    for n, q in enumerate(todo, 1):
        with torch.inference_mode():
            row = collect(rag, q, args.candidates, concat_ks)
        with scores.open("a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)
        rate = (time.perf_counter() - t0) / n
        print(f"{len(rows)}/{len(questions)}  {rate:.1f} s/question", flush=True)
    rows = [r for r in rows if r["id"] in {q.id for q in questions}]
    table = mixture_table(rows)
    best = {mode: max(table, key=lambda e, m=mode: e[m]) for mode in ("rag-sequence", "rag-token")}
    concat = {key: float(np.mean([r["concat"][key] for r in rows])) for key in rows[0]["concat"]}
    at_default = {
        mode: next(e[mode] for e in table
                   if e["k"] == 5 and e["tau"] == DEFAULT_TAU and e["w"] == DEFAULT_BM25_WEIGHT)
        for mode in ("rag-sequence", "rag-token")
    }  # fmt: skip
    write_json(args.out, {
        "machine": machine(), "split": counts, "questions": len(rows),
        "candidates": args.candidates, "model": args.model, "dtype": args.dtype,
        "best": best, "at_default": at_default, "concat": concat, "table": table,
    })  # fmt: skip
    for mode, e in best.items():
        print(f"{mode}: best K {e['k']} tau {e['tau']} w {e['w']}: mean log p(y|x) "
              f"{e[mode]:.3f} (default K 5 tau {DEFAULT_TAU} w {DEFAULT_BM25_WEIGHT}: "
              f"{at_default[mode]:.3f})")  # fmt: skip
    for key, value in sorted(concat.items()):
        print(f"concat {key}: mean log p(y|x) {value:.3f}")


if __name__ == "__main__":
    main()
