"""Abstention measured (mixrag.eval.abstention) on hand-computed numbers, and the
unanswerable split (mixrag.eval.unanswerable): seeded, and leaking no article."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from mixrag.errors import MixragError
from mixrag.eval.abstention import (
    Abstention,
    CurvePoint,
    abstention,
    accuracy_at_coverage,
    aurc,
    choose_threshold,
    rates,
    risk_coverage,
)
from mixrag.eval.datasets import Question, load_dataset
from mixrag.eval.records import AnswerRecord
from mixrag.eval.unanswerable import (
    article_of,
    corpus_without,
    held_out_articles,
    is_answerable,
)

CONF = [0.9, 0.8, 0.8, 0.3]


def test_risk_coverage_groups_ties_and_its_area() -> None:
    curve = risk_coverage(CONF, [True, False, True, False])
    assert curve == [
        CurvePoint(0.9, 0.25, 1.0),
        CurvePoint(0.8, 0.75, pytest.approx(2 / 3)),  # the tied 0.8s enter together
        CurvePoint(0.3, 1.0, 0.5),
    ]
    # 0.25·(1 − 1) + 0.5·(1 − 2/3) + 0.25·(1 − 0.5)
    assert aurc(curve) == pytest.approx(0.5 / 3 + 0.125)
    assert accuracy_at_coverage(curve, 0.8) == 0.5
    assert accuracy_at_coverage(curve, 0.75) == pytest.approx(2 / 3)
    assert aurc([]) is None and accuracy_at_coverage([], 0.8) is None
    # right answers ranked first: risk 0, 0, 1/3, 1/2; ranked last: 1, 1, 2/3, 1/2
    best = aurc(risk_coverage([0.9, 0.8, 0.7, 0.6], [True, True, False, False]))
    worst = aurc(risk_coverage([0.9, 0.8, 0.7, 0.6], [False, False, True, True]))
    assert best == pytest.approx(0.25 / 3 + 0.125)
    assert worst == pytest.approx(0.5 + 0.25 * 2 / 3 + 0.125)
    with pytest.raises(MixragError, match="4 confidences but 3"):
        risk_coverage(CONF, [True, False, True])


def test_rates_and_threshold_choice() -> None:
    r = rates(CONF, [True, True, False, False], 0.5)
    assert (r.answer_rate, r.abstention_rate) == (1.0, 0.5)
    # no threshold reaches both targets: the best mean of the two, lowest on a tie
    best, met = choose_threshold(CONF, [True, True, False, False])
    assert not met and best.threshold == 0.8 and best.abstention_rate == 0.5
    # here 0.7 answers every answerable question and abstains on every unanswerable one
    best, met = choose_threshold([0.9, 0.7, 0.2, 0.1], [True, True, False, False])
    assert met and best.threshold == 0.7
    # the lowest threshold that meets them: 0.2 abstains on 2 of 2 at min 0.5 too
    best, met = choose_threshold(
        [0.9, 0.7, 0.2, 0.1], [True, True, False, False], min_abstention_rate=0.5
    )
    assert met and best.threshold == 0.2 and best.abstention_rate == 0.5
    with pytest.raises(MixragError, match="answerable and unanswerable"):
        choose_threshold([0.5], [True])


def test_abstention_counts_answered_unanswerable_as_wrong() -> None:
    a = abstention(CONF, [1, 0, 1, 1], [True, True, False, False], 0.5)
    # correct: answerable and EM 1 -> only the first; curve 1/1, 1/3, 1/4
    assert [p.accuracy for p in a.curve] == pytest.approx([1.0, 1 / 3, 0.25])
    assert a.aurc == pytest.approx(0.5 * (2 / 3) + 0.25 * 0.75)
    assert (a.answerable, a.unanswerable) == (2, 2)
    assert (a.answer_rate, a.abstention_rate) == (1.0, 0.5)
    assert a.em_answerable == 50.0 and a.em_answered == 50.0 and a.accuracy_at_80 == 0.25
    assert Abstention.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def _q(qid: str, article: int, paragraph: int = 0) -> Question:
    return Question(qid, f"question {qid}?", ("x",), gold_doc_keys=(f"{article}:{paragraph}",))


# 10 articles; article a has a + 1 questions (55 in all)
QUESTIONS = [_q(f"a{a}q{i}", a, i % 2) for a in range(10) for i in range(a + 1)]


def test_split_is_seeded_order_free_and_reaches_the_share() -> None:
    held = held_out_articles(QUESTIONS, 0.33, seed=4)
    assert held == held_out_articles(list(reversed(QUESTIONS)), 0.33, seed=4)
    assert any(held_out_articles(QUESTIONS, 0.33, seed=s) != held for s in range(5))
    n_out = sum(not is_answerable(q, held) for q in QUESTIONS)
    assert n_out >= round(0.33 * len(QUESTIONS))
    # greedy: leaving out the last article added would fall short of the share
    last_short = [a for a in held if n_out - (int(a) + 1) < round(0.33 * len(QUESTIONS))]
    assert last_short
    assert held_out_articles(QUESTIONS, 0.0, seed=4) == frozenset()
    assert len(held_out_articles(QUESTIONS, 0.99, seed=4)) == 9  # one article stays
    with pytest.raises(MixragError, match="share must be in"):
        held_out_articles(QUESTIONS, 1.0, seed=0)
    with pytest.raises(MixragError, match=r"'n1'.*SQuAD gold key"):
        article_of(Question("n1", "q?", ("x",)))


def test_corpus_without_keeps_article_positions(tiny_squad: Path) -> None:
    squad = json.loads(tiny_squad.read_text())
    out = corpus_without(squad, {"0"})
    assert out["data"][0] == {"title": "Riverside_Mill", "paragraphs": []}
    assert out["data"][1] == squad["data"][1]
    assert squad["data"][0]["paragraphs"]  # the original is untouched
    qs = load_dataset(tiny_squad).questions
    assert [is_answerable(q, {"0"}) for q in qs] == [False, False, False, True]


def test_index_with_held_out_articles_leaks_none(
    tiny_squad: Path, tmp_path: Path, encoder: object
) -> None:
    from mixrag.eval.corpus import index_dataset
    from mixrag.index.folder import Index

    data = load_dataset(tiny_squad)
    folder = index_dataset(data, tmp_path / "idx", held_out=frozenset({"0"}), encoder=encoder)
    with Index.open(folder) as index:
        passages = [p for batch in index.store.iter_passages() for p in batch]
        assert passages and {p.metadata["article"] for p in passages} == {1}
        assert {p.title for p in passages} == {"Elmwood Lake"}
    # a folder that already indexes the whole dataset would leak: refused
    index_dataset(data, tmp_path / "full", encoder=encoder)
    with pytest.raises(MixragError, match=r"also indexes .*tiny-squad\.json.*fresh folder"):
        index_dataset(data, tmp_path / "full", held_out=frozenset({"0"}), encoder=encoder)


def _record(
    p: float, em: float, answerable: bool | None, relevance: float | None = None
) -> AnswerRecord:
    return AnswerRecord(
        prediction="x",
        em=em,
        f1=em,
        logprob=math.log(p),
        probability=p,
        passage_ids=("a",),
        gold_in_passages=None,
        answer_in_passages=True,
        cited=None,
        cited_gold=None,
        timings={"total": 0.1},
        answerable=answerable,
        gain=0.5,
        relevance=relevance,
    )


def test_an_answer_off_the_question_is_abstained_on_too() -> None:
    """Answered iff p ≥ 0.5 and relevance ≥ 0.4 (closed-book: p alone), by hand:
    q1 (0.9, 0.9) yes; q2 (0.8, 0.3) no; q3 (0.8, 0.8) yes; q4 (0.3, 0.2) no."""
    from mixrag.eval.summary import answer_result

    split = [True, True, False, False]
    relevance = [0.9, 0.3, 0.8, 0.2]
    rows = [
        _record(p, e, a, r) for p, e, a, r in zip(CONF, [1, 0, 1, 1], split, relevance, strict=True)
    ]
    gated = answer_result("concat", 3, rows, 5, min_confidence=0.5, min_relevance=0.4).abstention
    assert gated is not None and gated.min_relevance == 0.4
    assert gated.answer_rate == 0.5 and gated.abstention_rate == 0.5
    assert gated.em_answerable == 50.0 and gated.em_answered == 100.0
    book = answer_result("closed-book", 0, rows, 5, min_confidence=0.5, min_relevance=0.4)
    assert book.abstention is not None and book.abstention.min_relevance is None
    assert book.abstention.answer_rate == 1.0 and book.abstention.abstention_rate == 0.5
    # the curve stays on p(y|x) alone
    assert gated.curve == book.abstention.curve
    # records without a relevance (written before it was recorded): p alone
    old = [replace(r, relevance=None) for r in rows]
    plain = answer_result("concat", 3, old, 5, min_confidence=0.5, min_relevance=0.4).abstention
    assert plain is not None and plain.answer_rate == 1.0
    assert AnswerRecord.from_dict(rows[1].to_dict()).relevance == 0.3


def test_run_summary_has_abstention_only_with_a_split(tmp_path: Path) -> None:
    from mixrag.eval.abstention_report import abstention_markdown
    from mixrag.eval.report import write_report
    from mixrag.eval.results import EvalResults, ResultsConfig
    from mixrag.eval.summary import answer_result

    split = [True, True, False, False]
    rows = [_record(p, e, a) for p, e, a in zip(CONF, [1, 0, 1, 1], split, strict=True)]
    run = answer_result("concat", 5, rows, ece_bins=5, min_confidence=0.5)
    assert run.abstention == abstention(CONF, [1, 0, 1, 1], [True, True, False, False], 0.5)
    plain = answer_result("concat", 5, [_record(p, 1, None) for p in CONF], ece_bins=5)
    assert plain.abstention is None
    # an old record (no answerable / gain) still reads
    old = {k: v for k, v in rows[0].to_dict().items() if k not in ("answerable", "gain")}
    assert AnswerRecord.from_dict(old).answerable is None
    results = EvalResults(
        config=ResultsConfig(unanswerable=0.5), answers={"concat@5": run, "other@5": plain}
    )
    assert EvalResults.from_dict(json.loads(json.dumps(results.to_dict()))) == results
    section = "\n".join(abstention_markdown(results))
    assert "| concat@5 | 2 | 2 | 0.5 | – | 100.0 | 50.0 | 50.0 | 50.0 | 0.521 | 0.250 |" in section
    assert "other@5" not in section
    files = write_report(results, tmp_path / "r")
    assert (tmp_path / "r" / "plots" / "risk_coverage.png").is_file()
    assert "risk_coverage.png" in files.plots
    assert "## Abstention" in (tmp_path / "r" / "summary.md").read_text()
    assert abstention_markdown(EvalResults(answers={"other@5": plain})) == []


def test_eval_unanswerable_needs_build_index(tiny_squad: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mixrag.cli.main import app

    args = ["eval", "--dataset", str(tiny_squad), "--out", str(tmp_path / "r")]
    idx = ["--index", str(tmp_path / "idx")]
    res = CliRunner().invoke(app, [*args, *idx, "--unanswerable", "0.5"])
    assert isinstance(res.exception, MixragError)
    assert "--unanswerable needs --build-index" in str(res.exception)
    res = CliRunner().invoke(app, [*args, "--build-index", str(tmp_path), "--unanswerable", "1"])
    assert "unanswerable must be a share in [0, 1), got 1.0" in str(res.exception)
