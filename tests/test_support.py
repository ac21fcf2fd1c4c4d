"""Support and abstention (mixrag.support): the rule on hand-computed numbers, the
closed-book pass on the fake generator, and what an unsupported answer shows."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from mixrag.answer import Answer, Citation, RAGConfig
from mixrag.errors import MixragError
from mixrag.support import (
    NOT_FOUND,
    closed_book_logprobs,
    gain,
    is_relevant,
    judge,
    min_relevance_of,
    relevance,
)
from mixrag.support_pass import with_support
from mixrag.types import Hit, Passage
from tests.fakes import FakeGenerator


def test_judge_on_hand_computed_numbers() -> None:
    # p(y|x) = 0.5, p(y|x, no passage) = 0.1: g = log 5 = 1.609 nats
    s = judge(math.log(0.5), math.log(0.1), 0.3)
    assert s.supported and s.probability == pytest.approx(0.5)
    assert s.gain == pytest.approx(math.log(5))
    assert judge(math.log(0.5), math.log(0.1), 0.6).supported is False  # p below
    assert judge(math.log(0.5), math.log(0.1), 0.3, min_gain=1.6).supported is True
    assert judge(math.log(0.5), math.log(0.1), 0.3, min_gain=1.7).supported is False
    # the model alone gave y more probability than the passages: g < 0
    assert judge(math.log(0.5), math.log(0.8), 0.3, min_gain=0.0).supported is False
    # closed-book: g = 0 and the gain test does not apply
    cb = judge(math.log(0.5), math.log(0.5), 0.3, min_gain=5.0, closed_book=True)
    assert cb.supported and cb.gain == 0.0
    assert judge(0.0, math.log(0.3), 0.3).supported  # p = 1 >= 0.3; threshold inclusive


def _hit(i: int, score: float, dense: float | None) -> Hit:
    return Hit(Passage(f"p{i}", "d", "t", f"passage {i}"), score, 0.5, i, score, dense)


def test_relevance_and_its_test_on_hand_computed_numbers() -> None:
    # the best inner product of the passages: the dense part, else the score itself
    assert relevance([]) is None
    assert relevance([_hit(1, 0.9, 0.3), _hit(2, 0.7, 0.5)]) == 0.5
    assert relevance([_hit(1, 0.45, None), _hit(2, 0.7, 0.2)]) == 0.45
    p9, p1 = math.log(0.9), math.log(0.1)
    off = judge(p9, p1, 0.5, relevance=0.3, min_relevance=0.42)
    assert not off.supported and off.off_topic and off.relevance == 0.3
    assert judge(p9, p1, 0.5, relevance=0.42, min_relevance=0.42).supported  # inclusive
    assert judge(p9, p1, 0.5, relevance=0.3, min_relevance=None).supported  # off
    assert not judge(p9, p1, 0.5, relevance=None, min_relevance=0.42).supported  # no passage
    # closed-book reads no passage: its support is its confidence alone
    assert judge(p9, p9, 0.5, closed_book=True, relevance=0.1, min_relevance=0.42).supported
    # both tests must pass: a relevant passage does not rescue a low p(y|x)
    low = judge(p1, p1, 0.5, relevance=0.9, min_relevance=0.42)
    assert not low.supported and not low.off_topic
    with pytest.raises(MixragError, match="min_relevance"):
        RAGConfig(min_relevance=math.nan)


def test_one_relevance_rule_and_per_request_thresholds() -> None:
    assert is_relevant(0.5, 0.42) and is_relevant(0.42, 0.42) and not is_relevant(0.4, 0.42)
    assert is_relevant(None, None) and is_relevant(-1.0, None)  # the test is off
    assert not is_relevant(None, 0.42)  # no passage, the test on
    # what a request gives: None keeps the default, "off" turns the test off
    assert min_relevance_of(None, 0.42) == 0.42 and min_relevance_of(None, None) is None
    assert min_relevance_of("off", 0.42) is None and min_relevance_of(" OFF ", 0.42) is None
    assert min_relevance_of(0.3, 0.42) == 0.3 and min_relevance_of(1, None) == 1.0
    with pytest.raises(MixragError, match="min_relevance must be a number or 'off', got 'on'"):
        min_relevance_of("on", 0.42)
    with pytest.raises(MixragError, match="min_relevance must be a finite"):
        min_relevance_of(math.inf, 0.42)


def test_an_answer_whose_passages_are_off_the_question_is_not_supported() -> None:
    fake = FakeGenerator(vocab_size=7, seed=1)
    a = _answer("concat", math.log(0.9), (2, 0))
    a = replace(
        a,
        citations=tuple(
            replace(c, hit=replace(c.hit, dense=d))
            for c, d in zip(a.citations, (0.3, 0.5), strict=True)
        ),
    )
    (out,) = with_support(_fake_rag(fake), [a], RAGConfig(min_confidence=0.0, min_relevance=0.6))
    assert not out.supported and out.shown() == NOT_FOUND
    assert out.support_line() == (
        "not supported by the indexed documents "
        "(no passage is about the question: relevance 0.50 < 0.6; p = 0.9)"
    )
    d = out.to_dict()
    assert d["relevance"] == 0.5 and d["min_relevance"] == 0.6
    (ok,) = with_support(_fake_rag(fake), [a], RAGConfig(min_confidence=0.0, min_relevance=0.5))
    assert ok.supported


def test_gain_when_closed_book_gives_zero_probability() -> None:
    assert gain(math.log(0.2), -math.inf) == math.inf
    assert gain(-math.inf, -math.inf) == 0.0
    assert gain(-1.0, -3.5) == pytest.approx(2.5)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan])
def test_threshold_out_of_range_is_named(bad: float) -> None:
    with pytest.raises(MixragError, match="min_confidence"):
        RAGConfig(min_confidence=bad)
    with pytest.raises(MixragError, match="min_gain"):
        RAGConfig(min_gain=math.inf)


def _hand_logprob(fake: FakeGenerator, prompt: str, ids: list[int]) -> float:
    return sum(float(fake.next_logprobs(prompt, ids[:i])[t]) for i, t in enumerate(ids))


def test_closed_book_pass_is_one_batched_call_of_the_hand_sum() -> None:
    fake = FakeGenerator(vocab_size=7, seed=3)
    got = closed_book_logprobs(fake, ["Q1", "Q2", "Q3"], [[3, 1, 0], [5, 0], []])
    assert fake.n_logprobs_calls == 1
    assert got[0] == pytest.approx(_hand_logprob(fake, "Q1", [3, 1, 0]), abs=1e-5)
    assert got[1] == pytest.approx(_hand_logprob(fake, "Q2", [5, 0]), abs=1e-5)
    assert got[2] == 0.0  # an empty answer
    assert closed_book_logprobs(fake, [], []) == [] and fake.n_logprobs_calls == 1


def _answer(mode: str, logprob: float, ids: tuple[int, ...], posterior: float = 0.9) -> Answer:
    hits = [Hit(Passage(f"p{i}", "d", "t", f"passage {i}"), 1.0, 0.5, i, 1.0) for i in (1, 2)]
    cites = (
        Citation(hits[0], 0.5, 1 - posterior, -3.0),
        Citation(hits[1], 0.5, posterior, -1.0),
    )
    return Answer("Q?", mode, "1901", logprob, ids, cites)


def _fake_rag(fake: FakeGenerator) -> Any:
    # what with_support uses of a RAG: the closed-book prompt and the forward passes
    return SimpleNamespace(
        generator=SimpleNamespace(render=lambda messages: f"rendered:{messages}"),
        prompts=SimpleNamespace(closed_book=lambda q: f"closed:{q}"),
        steps=fake,
    )


def test_ask_path_gain_uses_the_closed_book_score_and_abstains_below_threshold() -> None:
    fake = FakeGenerator(vocab_size=7, seed=1)
    ids = (2, 4, 0)
    closed = _hand_logprob(fake, "rendered:closed:Q?", list(ids))
    high = _answer("rag-sequence", math.log(0.8), ids)
    low = _answer("concat", math.log(0.1), ids)
    book = _answer("closed-book", math.log(0.7), ids)
    out = with_support(_fake_rag(fake), [high, low, book], RAGConfig(min_confidence=0.5))
    assert fake.n_logprobs_calls == 1  # one batch, the closed-book answer not rescored
    assert fake.history == [] and fake.max_rows == 0  # no decoding
    h, lo, b = out
    assert h.support is not None and lo.support is not None and b.support is not None
    assert h.support.gain == pytest.approx(math.log(0.8) - closed, abs=1e-5)
    assert lo.support.gain == pytest.approx(math.log(0.1) - closed, abs=1e-5)
    assert b.support.gain == 0.0
    assert h.supported and not lo.supported and b.supported
    # what a reader sees
    assert h.shown() == "1901 [2]" and h.support_line() == "supported by [2] (p = 0.8)"
    assert lo.shown() == NOT_FOUND and lo.shown(show_guess=True) == "1901 [2]"
    assert lo.support_line() == "not supported by the indexed documents (p = 0.1)"
    assert b.support_line().startswith("answered from the model alone")
    d = lo.to_dict()
    assert d["supported"] is False and d["min_confidence"] == 0.5
    assert d["gain"] == pytest.approx(lo.support.gain)


def test_min_gain_separates_a_guess_from_the_passages() -> None:
    fake = FakeGenerator(vocab_size=7, seed=1)
    ids = (2, 4, 0)
    closed = _hand_logprob(fake, "rendered:closed:Q?", list(ids))
    # confident, but only as confident as the question alone makes the model: a guess
    guess = _answer("rag-sequence", closed, ids)
    (out,) = with_support(_fake_rag(fake), [guess], RAGConfig(min_confidence=0.0, min_gain=0.5))
    assert out.support is not None and out.support.gain == pytest.approx(0.0, abs=1e-5)
    assert not out.supported


def test_support_line_without_posteriors_names_the_documents() -> None:
    a = _answer("concat", math.log(0.9), (1, 0))
    bare = replace(
        a,
        citations=tuple(replace(c, posterior=None) for c in a.citations),
        support=judge(a.logprob, math.log(0.1), 0.5),
    )
    assert bare.support_line() == "supported by the indexed documents (p = 0.9)"


def test_unjudged_answer_is_shown_as_before() -> None:
    a = _answer("rag-sequence", math.log(0.01), (1, 0))
    assert a.supported and a.shown() == "1901 [2]" and a.support_line() == ""
    assert a.to_dict()["supported"] is True and a.to_dict()["gain"] is None


def test_what_the_cli_chat_and_mcp_show_of_an_unsupported_answer() -> None:
    from mixrag.cli.format import answer_text
    from mixrag.server.chat.replies import content
    from mixrag.server.mcp.text import answer_text as mcp_text

    fake = FakeGenerator(vocab_size=7, seed=1)
    low, high = with_support(
        _fake_rag(fake),
        [_answer("concat", math.log(0.1), (2, 0)), _answer("concat", math.log(0.9), (2, 0))],
        RAGConfig(min_confidence=0.5),
    )
    cli = answer_text(low).splitlines()
    assert cli[0] == f"answer (concat): {NOT_FOUND}" and "1901" not in "\n".join(cli[:2])
    assert cli[1] == "not supported by the indexed documents (p = 0.1)"
    guess = answer_text(low, show_guess=True).splitlines()
    assert guess[:2] == [f"answer (concat): {NOT_FOUND}", "best guess: 1901 [2]"]
    assert answer_text(high).splitlines()[:2] == [
        "answer (concat): 1901 [2]",
        "supported by [2] (p = 0.9)",
    ]
    assert "gain over closed-book" in answer_text(high)
    assert content(low) == NOT_FOUND and content(high) == "1901 [2]"
    mcp = mcp_text(low).splitlines()
    assert mcp[:3] == [
        NOT_FOUND,
        "Best guess: 1901 [2]",
        "Not supported by the indexed documents (p = 0.1).",
    ]
    assert mcp_text(high).splitlines()[:2] == ["1901 [2]", "Supported by [2] (p = 0.9)."]
