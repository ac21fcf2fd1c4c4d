"""Answers that only repeat the question.

A small generator reading a passage sometimes answers with a phrase of the question
itself ("What is a popular strolling destination for the Varsovians?" -> "strolling
destination"). Such an answer is right almost never: of the untrained RAG-Sequence
answers on 500 SQuAD dev questions, 56 were made only of the question's words and 2 of
them were right; on 200 questions of the training articles, 30 and none
(docs/BENCHMARKS.md, issue 27). RAG-Sequence has other candidates at hand (one per
passage, each with its exact p(y|x)), so by default it answers with the likeliest one
that is not an echo (``RAGConfig.allow_echo``).
"""

from __future__ import annotations

from mixrag.eval.metrics import normalize_answer


def echoes_question(answer: str, question: str) -> bool:
    """True when every word of ``answer`` occurs in ``question``, compared after the
    SQuAD normalisation (case, punctuation and the articles a/an/the dropped); an answer
    with no words is not an echo."""
    words = normalize_answer(answer).split()
    return bool(words) and set(words) <= set(normalize_answer(question).split())
