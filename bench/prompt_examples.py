"""Do more few-shot examples make RAG-Sequence read better? (issue 27: untrained EM)

The passage prompt's three made-up examples (``generator.prompts``) were chosen by
``bench/prompt_study.py`` on the gold paragraph. Of RAG-Sequence's wrong answers on the
500 test questions, most are another span of the cited passage, and a fifth are a
reference's span cut too long or too short (BENCHMARKS, "Re-ranking"). This study adds
three more made-up examples aimed at those errors (a distractor in the same passage, a
count written as a word, a full noun phrase rather than its head) and measures
open-domain RAG-Sequence (``combined`` retrieval, K = 5) on training-article questions,
nothing from the held-out or test questions. Compare the report with one of the same
questions and settings under the default prompt with ``bench/compare_reports.py``.
Measured (docs/BENCHMARKS.md, issue 27): +3.0 EM [−1.5, +7.5] on 200 training-article
questions, +0.2 [−1.8, +2.4] on the 500 test questions; the default prompt was kept.

Usage:
  python bench/prompt_examples.py --index .bench/squad-dev-index \\
      --dataset .bench/train/split/train.jsonl --limit 200 --out .bench/prompt-six-train-200
  python bench/compare_reports.py .bench/alt-train-200 .bench/prompt-six-train-200
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from mixrag.eval.config import EvalConfig
from mixrag.eval.datasets import load_dataset
from mixrag.eval.runner import evaluate
from mixrag.generator import GeneratorConfig, PromptFormat
from mixrag.generator.prompts import _PASSAGE_EXAMPLES, Message, _passage_turn
from mixrag.index.opening import open_index
from mixrag.rag import RAG, RAGConfig
from mixrag.types import Passage

_MORE_PASSAGE = Passage(
    id="example-3",
    doc_id="example-3",
    title="Osterhaven Harbor Festival",
    text=(
        "The Osterhaven Harbor Festival is held every August. It was first organised in "
        "1952 by the city's merchant guild, and its main event is a rowing race between "
        "six crews from the port's districts. The mayor opens the festival, while the "
        "guild awards the winning crew a silver oar."
    ),
)
_MORE_EXAMPLES = (
    ("How many crews take part in the rowing race?", "six"),
    ("Who first organised the festival?", "the city's merchant guild"),
    ("Who opens the Harbor Festival?", "The mayor"),
)


@dataclasses.dataclass(frozen=True)
class SixExamples(PromptFormat):
    """The default passage prompt with three more worked examples after its three."""

    def passage(self, question: str, passage: Passage) -> list[Message]:
        messages = super().passage(question, passage)
        if not self.few_shot:
            return messages
        extra = self._shots([(_passage_turn(q, _MORE_PASSAGE), a) for q, a in _MORE_EXAMPLES])
        assert len(messages) >= 2 * len(_PASSAGE_EXAMPLES) + 1
        return [*messages[:-1], *extra, messages[-1]]


@dataclasses.dataclass(frozen=True)
class SixExamplesConfig(GeneratorConfig):
    """A generator config whose passage prompts are :class:`SixExamples`'."""

    @property
    def prompt_format(self) -> PromptFormat:
        return SixExamples(style=self.prompt_style, few_shot=self.few_shot)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--dataset", type=Path, required=True, help="training-article questions")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--tau", type=float, default=0.05)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = EvalConfig(
        modes=("rag-sequence",), ks=(args.k,), limit=args.limit, method="combined",
        retrieval=("combined",),
    )  # fmt: skip
    data = load_dataset(args.dataset)
    with open_index(args.index) as index:
        rag = RAG.open(
            index,
            model=args.model,
            config=RAGConfig(
                k=args.k,
                min_confidence=config.min_confidence,
                min_relevance=config.min_relevance,
            ),
            method="combined",
            tau=args.tau,
            generator_options={"dtype": args.dtype},
        )
        gen = rag.generator
        gen.config = SixExamplesConfig(**dataclasses.asdict(gen.config))  # type: ignore[union-attr]
        gen.use_kv_store(None)  # type: ignore[union-attr]  # no new heads in the index folder
        results = evaluate(
            index, data, config, args.out, rag,
            command="python bench/prompt_examples.py " + shlex.join(sys.argv[1:]),
        )  # fmt: skip
    run = results["answers"][f"rag-sequence@{args.k}"]
    print(f"rag-sequence@{args.k}: n {run['n']}, EM {run['em']:.1f}, F1 {run['f1']:.1f}")


if __name__ == "__main__":
    main()
