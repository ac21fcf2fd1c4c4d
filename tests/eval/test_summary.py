"""Records to tables: recall@k, MRR, answer-in-top-k, EM / F1 and calibration, by hand."""

from __future__ import annotations

import math

import pytest

from mixrag.eval.config import EvalConfig
from mixrag.eval.datasets import Question
from mixrag.eval.records import AnswerRecord, RetrievalRecord
from mixrag.eval.results import Latency
from mixrag.eval.summary import (
    latency,
    question_results,
    summarize_answers,
    summarize_retrieval,
)


def _q(qid: str, answers: tuple[str, ...], gold: str = "0:0") -> Question:
    return Question(id=qid, question=f"question {qid}?", answers=answers, gold_doc_keys=(gold,))


def _rec(em: float, p: float, gold: bool, cited: bool | None) -> AnswerRecord:
    return AnswerRecord(
        prediction="p",
        em=em,
        f1=0.5 if em == 0 else 1.0,
        logprob=math.log(p),
        probability=p,
        passage_ids=("p1", "p2"),
        gold_in_passages=gold,
        answer_in_passages=gold,
        cited="p1",
        cited_gold=cited,
        timings={"total": 1.0},
    )


QUESTIONS = [_q("a", ("x",)), _q("b", ("y",)), _q("c", ("z",)), _q("d", ("w",))]
CONFIG = EvalConfig(modes=("concat",), ks=(2,), retrieval=("dense",), recall_ks=(1, 3), ece_bins=2)
RETRIEVAL = {
    "dense": {
        "a": RetrievalRecord(("p1",), gold_rank=1, answer_rank=1, latency=0.1),
        "b": RetrievalRecord(("p1",), gold_rank=3, answer_rank=None, latency=0.2),
        "c": RetrievalRecord(("p1",), gold_rank=None, answer_rank=2, latency=0.3),
        # "d" not retrieved yet: a partial run counts only what it finished
    }
}
ANSWERS = {
    "concat@2": {
        "a": _rec(1.0, 0.9, True, True),
        "b": _rec(0.0, 0.8, False, False),
        "c": _rec(1.0, 0.2, True, None),
        "d": _rec(0.0, 0.1, False, True),
    }
}


def test_retrieval_arithmetic_by_hand() -> None:
    dense = summarize_retrieval(QUESTIONS, RETRIEVAL, CONFIG)["dense"]
    assert dense.n == 3 and dense.n_with_gold == 3
    assert dense.recall == {1: pytest.approx(1 / 3), 3: pytest.approx(2 / 3)}
    assert dense.mrr == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert dense.answer_in_topk == {1: pytest.approx(1 / 3), 3: pytest.approx(2 / 3)}
    assert dense.curve == (
        (1, pytest.approx(1 / 3)),
        (2, pytest.approx(1 / 3)),
        (3, pytest.approx(2 / 3)),
    )
    assert dense.latency_s.p50 == pytest.approx(0.2)


def test_answer_arithmetic_by_hand() -> None:
    run = summarize_answers(QUESTIONS, ANSWERS, CONFIG)["concat@2"]
    assert (run.mode, run.k, run.n) == ("concat", 2, 4)
    assert run.em == pytest.approx(50.0) and run.f1 == pytest.approx(75.0)
    # bins [0, .5): conf .2, .1 -> mean .15, acc .5; [.5, 1]: conf .9, .8 -> .85, acc .5
    # ECE = 2/4 * |.5 - .15| + 2/4 * |.5 - .85| = .35
    assert run.ece == pytest.approx(0.35)
    assert [b.count for b in run.reliability] == [2, 2]
    assert run.recall == pytest.approx(0.5) and run.answer_in_topk == pytest.approx(0.5)
    assert run.cited_gold == pytest.approx(2 / 3)
    assert run.latency_s == Latency(1.0, 1.0)


def test_closed_book_has_no_passage_metrics_and_empty_runs_are_left_out() -> None:
    config = EvalConfig(modes=("closed-book", "rag-token"), ks=(2,))
    records = {"closed-book@0": ANSWERS["concat@2"]}
    out = summarize_answers(QUESTIONS, records, config)
    assert list(out) == ["closed-book@0"]  # rag-token@2 has no records yet
    assert out["closed-book@0"].answer_in_topk is None and out["closed-book@0"].recall is None


def test_without_gold_passages_recall_is_none_not_zero() -> None:
    questions = [Question(id="a", question="q?", answers=("x",))]
    records = {"bm25": {"a": RetrievalRecord(("p1",), None, 1, 0.1)}}
    bm25 = summarize_retrieval(questions, records, CONFIG)["bm25"]
    assert bm25.n_with_gold == 0 and bm25.recall == {1: None, 3: None}
    assert bm25.mrr is None and bm25.curve == ()
    assert bm25.answer_in_topk == {1: 1.0, 3: 1.0}


def test_question_results_keep_sample_order_and_only_questions_with_records() -> None:
    out = question_results([*QUESTIONS, _q("e", ("v",))], RETRIEVAL, ANSWERS)
    assert [q.id for q in out] == ["a", "b", "c", "d"]
    assert "dense" not in out[3].retrieval and set(out[3].answers) == {"concat@2"}
    assert out[0].references == ("x",) and out[0].gold == ("0:0",)


def test_latency_percentiles() -> None:
    assert latency([]) == Latency(None, None)
    assert latency([1.0, 2.0, 3.0]) == Latency(2.0, pytest.approx(2.9))
