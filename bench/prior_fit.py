"""Fit w in the retriever score s = d(z)ᵀq(x) + w · bm25n(x, z) on SQuAD's training
articles from (question, answer) pairs alone, and measure retrieval on held-out ones.

The split is ``mixrag split-squad``'s (by article, ``--dev-fraction 0.2 --seed 0``, as
the training benchmarks use). The targets are distant: the passages that contain an
answer string, no gold paragraph. For each training question the hybrid top
``--candidates`` passages are retrieved once with their two parts; w and tau then
maximise log Σ_{z ∋ y} p_eta(z|x) (L-BFGS, a few parameters, no generator). The fitted
w is then used by the real ``combined`` retriever on the held-out articles, against
``dense``, ``bm25`` and ``hybrid`` on the same questions: recall@1/5/20 of the gold
paragraph, answer-in-top-5. Also reported: w fitted with tau held at its default, and
on the gold paragraphs instead (what supervision would add).

Usage:
  python bench/prior_fit.py --index .bench/squad-dev-index \
      --out bench/results/prior_fit-squad.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, write_json
from mixrag.eval.datasets import Question, load_dataset, sample
from mixrag.eval.retrieval import answer_in_passages, is_gold, recall_at_k
from mixrag.index.opening import open_index
from mixrag.retriever.retriever import DEFAULT_TAU, Retriever
from mixrag.train.data import split_by_article

BATCH = 64


def candidates(
    retriever: Retriever, questions: Sequence[Question], n: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """[Q, n] dense parts, bm25 parts, answer-string targets, gold targets (padded)."""
    dense = np.zeros((len(questions), n), dtype=np.float32)
    bm25 = np.zeros_like(dense)
    answer = np.zeros(dense.shape, dtype=bool)
    gold = np.zeros(dense.shape, dtype=bool)
    valid = np.zeros(dense.shape, dtype=bool)
    for start in range(0, len(questions), BATCH):
        batch = questions[start : start + BATCH]
        hits = retriever.search_batch([q.question for q in batch], k=n, method="hybrid")
        for i, (q, hs) in enumerate(zip(batch, hits, strict=True), start=start):
            for j, h in enumerate(hs):
                dense[i, j], bm25[i, j] = h.dense or 0.0, h.bm25 or 0.0
                answer[i, j] = answer_in_passages(q.answers, [h.passage.text])
                gold[i, j] = is_gold(h.passage, q)
                valid[i, j] = True
    dense[~valid] = -1e4  # padding: never chosen
    return (torch.from_numpy(dense), torch.from_numpy(bm25), torch.from_numpy(answer & valid),
            torch.from_numpy(gold & valid))  # fmt: skip


def fit(
    dense: torch.Tensor, bm25: torch.Tensor, target: torch.Tensor, fit_tau: bool
) -> dict[str, float]:
    """w (and tau) maximising the mean log p_eta(target set | x) over the questions
    with at least one target passage among their candidates."""
    keep = target.any(dim=1)
    dense, bm25, target = dense[keep], bm25[keep], target[keep]
    w = torch.zeros((), requires_grad=True)
    log_tau = torch.tensor(math.log(DEFAULT_TAU), requires_grad=fit_tau)
    params = [w, log_tau] if fit_tau else [w]
    opt = torch.optim.LBFGS(params, max_iter=500, line_search_fn="strong_wolfe")

    def nll() -> torch.Tensor:
        opt.zero_grad()
        logp = ((dense + w * bm25) / log_tau.exp()).log_softmax(dim=1)
        loss = -torch.logsumexp(logp.masked_fill(~target, -math.inf), dim=1).mean()
        loss.backward()
        return loss

    opt.step(nll)  # type: ignore[arg-type]
    return {
        "w": float(w.detach()),
        "tau": float(log_tau.detach().exp()),
        "nll": float(nll().detach()),
        "questions": int(keep.sum()),
    }


def retrieval(retriever: Retriever, questions: Sequence[Question], method: str) -> dict[str, float]:
    ranks, found = [], []
    for start in range(0, len(questions), BATCH):
        batch = questions[start : start + BATCH]
        hits = retriever.search_batch([q.question for q in batch], k=20, method=method)
        for q, hs in zip(batch, hits, strict=True):
            passages = [h.passage for h in hs]
            ranks.append(next((r for r, p in enumerate(passages, 1) if is_gold(p, q)), None))
            found.append(answer_in_passages(q.answers, [h.passage.text for h in hs[:5]]))
    return {
        **{f"recall@{k}": recall_at_k(ranks, k) for k in (1, 5, 20)},
        "answer@5": float(np.mean(found)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="data/squad/squaddev_v1.1.json.gz")
    ap.add_argument("--index", default=".bench/squad-dev-index")
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-test", type=int, default=None, help="held-out questions (all)")
    ap.add_argument("--candidates", type=int, default=40)
    ap.add_argument("--out", default="bench/results/prior_fit-squad.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        train_path, test_path, counts = split_by_article(args.dataset, tmp, 0.2, seed=0)
        train = sample(load_dataset(train_path).questions, args.n_train, seed=0)
        test = sample(load_dataset(test_path).questions, args.n_test, seed=0)
    index = open_index(args.index)
    retriever = index.retriever(bm25_weight=1.0)  # any w > 0: the hits carry both parts
    t0 = time.perf_counter()
    dense, bm25, answer, gold = candidates(retriever, train, args.candidates)
    fits = {
        "answer_string": fit(dense, bm25, answer, fit_tau=True),
        "answer_string_tau_fixed": fit(dense, bm25, answer, fit_tau=False),
        "gold_paragraph": fit(dense, bm25, gold, fit_tau=True),
    }
    fit_s = time.perf_counter() - t0
    w = round(fits["answer_string_tau_fixed"]["w"], 2)
    held_out = {
        method: retrieval(index.retriever(bm25_weight=w), test, method)
        for method in ("dense", "bm25", "hybrid", "combined")
    }
    result = {
        "machine": machine(),
        "split": counts,
        "train_questions": len(train),
        "test_questions": len(test),
        "candidates": args.candidates,
        "fits": fits,
        "w": w,
        "fit_seconds": fit_s,
        "held_out": held_out,
    }
    write_json(args.out, result)
    for name, f in fits.items():
        print(
            f"{name}: w {f['w']:.3f}  tau {f['tau']:.4f}  nll {f['nll']:.4f}  ({f['questions']} q)"
        )
    print(f"held-out, {len(test)} questions, combined with w = {w}:")
    for method, figures in held_out.items():
        print(f"  {method:9s} " + "  ".join(f"{k} {v:.3f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
