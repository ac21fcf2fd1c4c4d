"""Continuous batching: decodes on several threads, merged step by step, give the answers
they give alone.

Reference: each decoder run by itself on the plain generator. The engine runs them at
once from threads that start at different moments, so decodes join a running merged
state, leave it mid-way and re-order their rows (beam search) while others step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch

from mixrag.decoding import (
    DecodeResult,
    DecodingConfig,
    beam_search,
    greedy,
    rag_sequence_thorough,
    rag_token_greedy,
)
from mixrag.generator import TransformersGenerator
from mixrag.generator.base import StepGenerator
from mixrag.generator.engine import EngineClosed, StepEngine
from mixrag.generator.prompts import PromptFormat
from tests.generator.helpers import PASSAGES, QUESTIONS

ATOL = 1e-4
Job = Callable[[StepGenerator], list[DecodeResult]]


def _jobs(gen: TransformersGenerator) -> list[Job]:
    fmt = PromptFormat(few_shot=True)
    rag = [[gen.render(fmt.passage(q, p), passage=p) for p in PASSAGES] for q in QUESTIONS]
    plain = [gen.render(fmt.closed_book(q)) for q in [*QUESTIONS, "Who wrote Hamlet?"]]
    prior = torch.log_softmax(torch.tensor([[1.0, 0.5, -1.0], [0.2, 1.5, 0.0]]), dim=1)
    eos = gen.eos_ids
    beams = DecodingConfig(max_new_tokens=6, num_beams=2, num_return=2)
    short = DecodingConfig(max_new_tokens=3, num_beams=1)
    return [
        lambda g: rag_sequence_thorough(g, rag, prior, beams, eos_ids=eos),
        lambda g: greedy(g, plain, DecodingConfig(max_new_tokens=8), eos_ids=eos),
        lambda g: rag_token_greedy(g, rag, prior, short, eos_ids=eos),
        lambda g: beam_search(g, plain[:2], beams, eos_ids=eos),
        lambda g: rag_token_greedy(g, rag[1:], prior[1:], beams, eos_ids=eos),
    ]


def _same(got: list[DecodeResult], ref: list[DecodeResult]) -> None:
    assert len(got) == len(ref)
    for g, r in zip(got, ref, strict=True):
        assert [h.token_ids for h in g.nbest] == [h.token_ids for h in r.nbest]
        for hg, hr in zip(g.nbest, r.nbest, strict=True):
            assert hg.logprob == pytest.approx(hr.logprob, abs=ATOL)
            assert [x is None for x in hg.passage_logprobs] == [
                x is None for x in hr.passage_logprobs
            ]
            assert [x for x in hg.passage_logprobs if x is not None] == pytest.approx(
                [x for x in hr.passage_logprobs if x is not None], abs=ATOL
            )


def _run_together(engine: StepEngine, jobs: list[Job]) -> list[Any]:
    """Each job on its own thread and session; thread i starts once the engine has run
    i steps, so decodes join a merged state that is already decoding."""
    out: list[Any] = [None] * len(jobs)

    def run(i: int) -> None:
        try:
            with engine.session() as session:
                out[i] = jobs[i](session)
        except BaseException as exc:  # reported by the main thread
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for i, t in enumerate(threads):
        while engine.stats.steps < i and any(x.is_alive() for x in threads[:i]):
            threading.Event().wait(0.005)
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive(), "a decode never finished (the engine stalled)"
    return out


@pytest.mark.slow
def test_concurrent_decodes_equal_each_alone(smollm2: TransformersGenerator) -> None:
    jobs = _jobs(smollm2)
    alone = [job(smollm2) for job in jobs]
    engine = StepEngine(smollm2)
    try:
        together = _run_together(engine, jobs)
    finally:
        engine.close()
    for got, ref in zip(together, alone, strict=True):
        if isinstance(got, BaseException):
            raise got
        _same(got, ref)
    # the decodes did share forward passes
    stats = engine.stats
    shared = sum(c for n, c in stats.decodes_per_step.items() if n > 1)
    assert shared > 0, stats.as_dict()
    # RAG prompts and closed-book prompts have two heads: two lanes, a pass each
    assert stats.forwards > stats.steps, stats.as_dict()
    # every call (prefill, scoring) and step is counted and timed
    assert sum(stats.calls_waiting.values()) == stats.calls >= len(jobs)
    assert stats.call_seconds > 0 and stats.step_seconds > 0


@pytest.mark.slow
def test_a_failing_decode_leaves_the_others_alone(smollm2: TransformersGenerator) -> None:
    jobs = _jobs(smollm2)[:2]

    def gone(g: StepGenerator) -> list[DecodeResult]:
        calls = 0

        def on_prefix(q: int, ids: tuple[int, ...]) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise ConnectionError("client went away")

        fmt = PromptFormat()
        prompts = [smollm2.render(fmt.closed_book(q)) for q in QUESTIONS]
        cfg = DecodingConfig(max_new_tokens=8)
        return greedy(g, prompts, cfg, eos_ids=smollm2.eos_ids, on_prefix=on_prefix)

    alone = [job(smollm2) for job in jobs]
    engine = StepEngine(smollm2)
    try:
        together = _run_together(engine, [gone, *jobs])
        assert isinstance(together[0], ConnectionError)
        for got, ref in zip(together[1:], alone, strict=True):
            _same(got, ref)
        # scoring runs between steps and equals the generator's own
        fmt = PromptFormat()
        prompts = [[smollm2.render(fmt.passage(QUESTIONS[0], p), passage=p) for p in PASSAGES]]
        answers = [smollm2.encode_answer("Paris")]
        with engine.session() as session:
            got_lp = session.logprobs(prompts, answers)
        ref_lp = smollm2.logprobs(prompts, answers)
        torch.testing.assert_close(got_lp.logprobs, ref_lp.logprobs, atol=ATOL, rtol=0)
    finally:
        engine.close()
    with pytest.raises(EngineClosed):
        engine.run(lambda: None)


def test_a_closed_engine_refuses_work() -> None:
    engine = StepEngine(None)  # type: ignore[arg-type]  # nothing reaches the model
    assert engine.run(lambda x: x + 1, 1) == 2
    with pytest.raises(ValueError, match="boom"):
        engine.run(_raise)
    engine.close()
    with pytest.raises(EngineClosed, match="shut down"):
        engine.run(lambda: 1)


def _raise() -> None:
    raise ValueError("boom")


@pytest.mark.slow
def test_a_decode_that_drops_every_row_leaves_the_engine_usable(
    smollm2: TransformersGenerator,
) -> None:
    jobs = _jobs(smollm2)[1:2]
    alone = jobs[0](smollm2)
    engine = StepEngine(smollm2)
    try:
        with engine.session() as session:
            state = session.start([smollm2.render(PromptFormat().closed_book(QUESTIONS[0]))])
            empty = torch.zeros(0, dtype=torch.long)
            state.advance(empty, empty)  # no row left: the merged state is dropped
            assert state.logprobs().shape[0] == 0
        (got,) = _run_together(engine, jobs)
        _same(got, alone)
    finally:
        engine.close()


@pytest.mark.slow
def test_decodes_of_one_head_keep_it_shared_in_their_lane(smollm2: TransformersGenerator) -> None:
    fmt = PromptFormat(few_shot=True)
    rag = [[smollm2.render(fmt.passage(q, p), passage=p) for p in PASSAGES] for q in QUESTIONS]
    plain = [smollm2.render(fmt.closed_book(q)) for q in QUESTIONS]
    engine = StepEngine(smollm2)
    try:
        with engine.session() as a, engine.session() as b, engine.session() as c:
            sa = a.start(rag[0])
            sb = b.start(plain)
            sc = c.start(rag[1])
            lanes = engine._lanes
            assert len(lanes) == 2 and [len(lane.decodes) for lane in lanes] == [2, 1]
            # the RAG rows keep their head once (merged with the closed-book rows, which
            # hold no shared head here, each would have taken a copy)
            assert lanes[0].state is not None and lanes[0].state.shares_head
            threads = [
                threading.Thread(target=s.advance, args=(s.logprobs().argmax(-1),))
                for s in (sa, sb, sc)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
        assert engine.stats.steps == 1 and engine.stats.forwards == 2
    finally:
        engine.close()
