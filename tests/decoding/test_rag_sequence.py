"""RAG-Sequence decoding: thorough picks the exact mixture's best of the beams' union."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from mixrag.decoding import (
    DecodeResult,
    DecodingConfig,
    beam_search,
    rag_sequence_fast,
    rag_sequence_thorough,
)
from tests.decoding import reference as ref
from tests.fakes import FakeGenerator

V = 5
EOS = {0}
PROMPTS = [["q0 z0", "q0 z1", "q0 z2"], ["q1 z0", "q1 z1", "q1 z2"]]
LOG_PRIOR = torch.log(torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]))


def _union(
    fake: FakeGenerator, prompts: list[str], config: DecodingConfig
) -> dict[tuple[int, ...], list[float | None]]:
    """Each passage's beam, searched on its own; y -> beam log p_phi(y|x,z_j) or None."""
    per_passage = DecodingConfig(max_new_tokens=config.max_new_tokens, num_beams=config.num_beams)
    union: dict[tuple[int, ...], list[float | None]] = {}
    for j, p in enumerate(prompts):
        (result,) = beam_search(fake, [p], per_passage, eos_ids=EOS)
        for h in result.nbest:
            union.setdefault(h.token_ids, [None] * len(prompts))[j] = h.logprob
    return union


@pytest.mark.parametrize("seed", range(4))
def test_thorough_is_the_argmax_of_the_exact_mixture_over_the_union(seed: int) -> None:
    fake = FakeGenerator(vocab_size=V, seed=seed, scale=1.0)
    config = DecodingConfig(max_new_tokens=8, num_beams=3, num_return=4)
    results = rag_sequence_thorough(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS)
    for b, result in enumerate(results):
        prior = LOG_PRIOR[b].tolist()
        union = _union(fake, PROMPTS[b], config)
        exact = sorted(
            ((ref.rag_sequence_logprob(fake, PROMPTS[b], prior, y), y) for y in union),
            reverse=True,
        )
        assert [h.token_ids for h in result.nbest] == [y for _, y in exact[:4]]
        assert [h.logprob for h in result.nbest] == pytest.approx(
            [lp for lp, _ in exact[:4]], abs=1e-5
        )
        for h in result.nbest:
            assert list(h.passage_logprobs) == pytest.approx(
                [ref.plain_logprob(fake, p, h.token_ids) for p in PROMPTS[b]], abs=1e-5
            )


@pytest.mark.parametrize("seed", range(3))
def test_fast_uses_only_the_passages_that_produced_each_hypothesis(seed: int) -> None:
    fake = FakeGenerator(vocab_size=V, seed=seed, scale=1.0)
    config = DecodingConfig(max_new_tokens=8, num_beams=3, num_return=100)
    results = rag_sequence_fast(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS)
    for b, result in enumerate(results):
        union = _union(fake, PROMPTS[b], config)
        assert {h.token_ids for h in result.nbest} == set(union)
        for h in result.nbest:
            known = union[h.token_ids]
            assert [x is None for x in h.passage_logprobs] == [x is None for x in known]
            approx = math.log(
                sum(
                    math.exp(float(LOG_PRIOR[b, j]) + lp)
                    for j, lp in enumerate(known)
                    if lp is not None
                )
            )
            assert h.logprob == pytest.approx(approx, abs=1e-5)
        scores = [h.score for h in result.nbest]
        assert scores == sorted(scores, reverse=True)
    assert fake.n_logprobs_calls == 0  # no extra forward pass


def test_fast_equals_thorough_when_every_passage_produces_every_hypothesis() -> None:
    # A beam wide enough to hold every answer: each passage produces all of them.
    fake = FakeGenerator(vocab_size=V, seed=4)
    config = DecodingConfig(max_new_tokens=3, num_beams=V**3, num_return=10)
    fast = rag_sequence_fast(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS)
    thorough = rag_sequence_thorough(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS)
    for f, t in zip(fast, thorough, strict=True):
        assert [h.token_ids for h in f.nbest] == [h.token_ids for h in t.nbest]
        assert [h.logprob for h in f.nbest] == pytest.approx([h.logprob for h in t.nbest], abs=1e-5)
        assert all(x is not None for h in f.nbest for x in h.passage_logprobs)


def test_fast_equals_thorough_for_identical_passages() -> None:
    fake = FakeGenerator(vocab_size=V, seed=5, scale=1.0)
    prompts = [["same q0"] * 3, ["same q1"] * 3]
    config = DecodingConfig(max_new_tokens=8, num_beams=3)
    fast = rag_sequence_fast(fake, prompts, LOG_PRIOR, config, eos_ids=EOS)
    thorough = rag_sequence_thorough(fake, prompts, LOG_PRIOR, config, eos_ids=EOS)
    for f, t in zip(fast, thorough, strict=True):
        assert [h.token_ids for h in f.nbest] == [h.token_ids for h in t.nbest]
        assert [h.logprob for h in f.nbest] == pytest.approx([h.logprob for h in t.nbest], abs=1e-5)


def test_batched_equals_one_question_at_a_time() -> None:
    fake = FakeGenerator(vocab_size=V, seed=6, scale=1.0)
    config = DecodingConfig(max_new_tokens=8, num_beams=2)
    for decode in (rag_sequence_thorough, rag_sequence_fast):
        batched = decode(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS)
        for b in range(len(PROMPTS)):
            (single,) = decode(fake, PROMPTS[b : b + 1], LOG_PRIOR[b : b + 1], config, eos_ids=EOS)
            assert [h.token_ids for h in single.nbest] == [h.token_ids for h in batched[b].nbest]
            assert single.logprob == pytest.approx(batched[b].logprob, abs=1e-6)


def test_thorough_scores_the_union_while_searching() -> None:
    fake = FakeGenerator(vocab_size=V, seed=7, scale=1.0)
    config = DecodingConfig(max_new_tokens=6, num_beams=2, num_return=1)
    (r0, r1) = rag_sequence_thorough(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS)
    assert fake.n_start == 1  # all B*K prompts in one search
    assert fake.n_logprobs_calls == 0  # no second pass: the union was scored on the way
    assert len(fake.history[0]) == 6  # B*K rows at the first step
    # at most K rows per live hypothesis of each passage's beam
    assert fake.max_rows <= 2 * 3 * 3 * config.num_beams
    assert len(r0.nbest) == 1 and len(r1.nbest) == 1


def test_thorough_holds_k_rows_a_question_while_the_beams_agree() -> None:
    fake = FakeGenerator(vocab_size=V, seed=9, scale=1.0)
    prompts = [["same q0"] * 3, ["same q1"] * 3]  # every passage's beam is the same
    config = DecodingConfig(max_new_tokens=8, num_beams=1)
    rag_sequence_thorough(fake, prompts, LOG_PRIOR, config, eos_ids=EOS)
    assert fake.max_rows == 6  # B*K: no row beyond what K separate beams would need


def test_thorough_in_groups_equals_all_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from mixrag.decoding import rag_sequence

    fake = FakeGenerator(vocab_size=V, seed=10, scale=1.0)
    config = DecodingConfig(max_new_tokens=8, num_beams=2, num_return=3)
    together = rag_sequence_thorough(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS)
    seen: list[int] = []
    monkeypatch.setattr(rag_sequence, "ROW_BUDGET", 1)  # one question a group
    fake = FakeGenerator(vocab_size=V, seed=10, scale=1.0)
    grouped = rag_sequence_thorough(
        fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS, on_prefix=lambda q, _ids: seen.append(q)
    )
    assert fake.n_start == 2
    assert set(seen) == {0, 1}  # prefixes reported under the caller's question numbers
    for t, g in zip(together, grouped, strict=True):
        assert [h.token_ids for h in t.nbest] == [h.token_ids for h in g.nbest]
        assert [h.logprob for h in t.nbest] == pytest.approx([h.logprob for h in g.nbest])


def test_zero_prior_passage_never_counts() -> None:
    fake = FakeGenerator(vocab_size=V, seed=8, scale=1.0)
    config = DecodingConfig(max_new_tokens=6, num_beams=2)
    two = torch.log_softmax(LOG_PRIOR[:, :2], dim=1)
    padded = torch.cat([two, torch.full((2, 1), float("-inf"))], dim=1)
    results = rag_sequence_thorough(fake, PROMPTS, padded, config, eos_ids=EOS)
    for b, result in enumerate(results):
        for h in result.nbest:
            exact = ref.rag_sequence_logprob(fake, PROMPTS[b][:2], two[b].tolist(), h.token_ids)
            assert h.logprob == pytest.approx(exact, abs=1e-5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("decode", [rag_sequence_thorough, rag_sequence_fast])
def test_accept_answers_with_the_best_accepted_of_the_full_ranking(
    seed: int, decode: Callable[..., list[DecodeResult]]
) -> None:
    """With ``accept`` (e.g. no echo of the question) the answer is the best accepted
    hypothesis of the ranking without it, and the early stop changes nothing else."""
    fake = FakeGenerator(vocab_size=V, seed=seed, scale=1.0)
    full = decode(
        fake,
        PROMPTS,
        LOG_PRIOR,
        DecodingConfig(max_new_tokens=8, num_beams=2, num_return=100),
        eos_ids=EOS,
    )
    refused = {b: {r.nbest[0].token_ids} for b, r in enumerate(full)}  # refuse each leader
    calls: list[int] = []

    def accept(b: int, ids: tuple[int, ...]) -> bool:
        calls.append(b)
        return ids not in refused[b]

    one = DecodingConfig(max_new_tokens=8, num_beams=2, num_return=1)
    got = decode(fake, PROMPTS, LOG_PRIOR, one, eos_ids=EOS, accept=accept)
    assert calls and set(calls) <= {0, 1}
    for b, (g, f) in enumerate(zip(got, full, strict=True)):
        wanted = [h for h in f.nbest if h.token_ids not in refused[b]]
        if not wanted:  # nothing accepted: the best of all
            wanted = list(f.nbest)
        assert g.best.token_ids == wanted[0].token_ids
        assert g.best.logprob == pytest.approx(wanted[0].logprob, abs=1e-5)
    # nothing refused: the same answers as without accept
    same = decode(fake, PROMPTS, LOG_PRIOR, one, eos_ids=EOS, accept=lambda b, ids: True)
    assert [r.best.token_ids for r in same] == [r.nbest[0].token_ids for r in full]


def test_every_answer_refused_falls_back_to_the_best() -> None:
    fake = FakeGenerator(vocab_size=V, seed=1, scale=1.0)
    config = DecodingConfig(max_new_tokens=8, num_beams=2, num_return=1)
    plain = rag_sequence_thorough(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS)
    refused = rag_sequence_thorough(
        fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS, accept=lambda b, ids: False
    )
    assert [r.best.token_ids for r in refused] == [r.best.token_ids for r in plain]
