"""Beam search, plain and RAG-Token, against exhaustive enumeration of all answers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch

from mixrag.decoding import (
    DecodingConfig,
    Hypothesis,
    beam_search,
    greedy,
    rag_token_beam_search,
    rag_token_greedy,
)
from mixrag.mixture import rag_token_logprob
from tests.decoding import reference as ref
from tests.fakes import FakeGenerator

V = 5
EOS = {0}
PROMPTS = [["q0 z0", "q0 z1", "q0 z2"], ["q1 z0", "q1 z1", "q1 z2"]]
LOG_PRIOR = torch.log(torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]))
# Wide enough to keep every prefix alive: beam search is then exhaustive.
EVERYTHING = V**3

Ranked = list[tuple[float, tuple[int, ...], float, str]]


def _exhaustive(
    logprob: Callable[[tuple[int, ...]], float],
    max_len: int,
    alpha: float = 0.0,
    stop: Callable[[Sequence[int]], bool] | None = None,
) -> Ranked:
    """(score, ids, logprob, reason) of every possible answer, best first."""
    out = []
    for y, reason in ref.all_answers(V, EOS, max_len, stop):
        lp = logprob(y)
        out.append((ref.score(lp, len(y), alpha), y, lp, reason))
    return sorted(out, key=lambda r: -r[0])


def _assert_nbest(nbest: Sequence[Hypothesis], expected: Ranked) -> None:
    assert len(nbest) == len(expected)
    for hyp, (score, y, lp, reason) in zip(nbest, expected, strict=True):
        assert hyp.token_ids == y
        assert hyp.logprob == pytest.approx(lp, abs=1e-5)
        assert hyp.score == pytest.approx(score, abs=1e-5)
        assert hyp.stop_reason == reason


def _plain(fake: FakeGenerator, prompt: str) -> Callable[[tuple[int, ...]], float]:
    return lambda y: ref.plain_logprob(fake, prompt, y)


def _rag_token(fake: FakeGenerator, b: int) -> Callable[[tuple[int, ...]], float]:
    return lambda y: ref.rag_token_logprob(fake, PROMPTS[b], LOG_PRIOR[b].tolist(), y)


@pytest.mark.parametrize("seed", range(3))
def test_plain_beam_search_is_exhaustive_with_a_wide_beam(seed: int) -> None:
    fake = FakeGenerator(vocab_size=V, seed=seed)
    config = DecodingConfig(max_new_tokens=3, num_beams=EVERYTHING, num_return=10)
    results = beam_search(fake, ["a", "b"], config, eos_ids=EOS)
    for prompt, result in zip(["a", "b"], results, strict=True):
        _assert_nbest(result.nbest, _exhaustive(_plain(fake, prompt), 3)[:10])
        assert all(h.passage_logprobs == () for h in result.nbest)


@pytest.mark.parametrize("seed", range(3))
def test_rag_token_beam_search_is_exhaustive_with_a_wide_beam(seed: int) -> None:
    fake = FakeGenerator(vocab_size=V, seed=seed)
    config = DecodingConfig(max_new_tokens=3, num_beams=EVERYTHING, num_return=8)
    results = rag_token_beam_search(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS)
    for b, result in enumerate(results):
        _assert_nbest(result.nbest, _exhaustive(_rag_token(fake, b), 3)[:8])
        best = result.best
        for j, p in enumerate(PROMPTS[b]):
            assert best.passage_logprobs[j] == pytest.approx(
                ref.plain_logprob(fake, p, best.token_ids), abs=1e-5
            )


def test_exhaustive_with_length_penalty_and_stop_callable() -> None:
    fake = FakeGenerator(vocab_size=V, seed=11)

    def stop(ids: Sequence[int]) -> bool:  # e.g. "a newline was generated"
        return ids[-1] == 4

    config = DecodingConfig(
        max_new_tokens=3, num_beams=EVERYTHING, num_return=6, length_penalty=1.0
    )
    results = rag_token_beam_search(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS, stop=stop)
    for b, result in enumerate(results):
        expected = _exhaustive(_rag_token(fake, b), 3, alpha=1.0, stop=stop)
        _assert_nbest(result.nbest, expected[:6])
    assert {h.stop_reason for r in results for h in r.nbest} >= {"stop", "eos"}


@pytest.mark.parametrize(
    ("seed", "beams", "n_best", "alpha"),
    [(0, 3, 1, 0.0), (1, 3, 3, 0.0), (2, 4, 2, 1.0), (3, 2, 2, 0.5)],
)
def test_narrow_beam_equals_reference_beam_search(
    seed: int, beams: int, n_best: int, alpha: float
) -> None:
    # Long answers over a pruned beam: checks the selection rule, the row bookkeeping
    # (parents duplicated or dropped) and that early stopping changes nothing.
    fake = FakeGenerator(vocab_size=V, seed=seed, scale=1.0)
    config = DecodingConfig(
        max_new_tokens=12, num_beams=beams, num_return=n_best, length_penalty=alpha
    )
    results = rag_token_beam_search(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS)
    for b, result in enumerate(results):
        next_lp = ref.mixture_next(fake, PROMPTS[b], LOG_PRIOR[b].tolist())
        expected = ref.beam_reference(next_lp, V, EOS, beams, 12, n_best, alpha)
        _assert_nbest(result.nbest, expected)


def test_row_bookkeeping_duplicates_parents_and_keeps_passages_aligned() -> None:
    fake = FakeGenerator(vocab_size=V, seed=5, scale=1.0)
    beams, k = 3, 3
    config = DecodingConfig(max_new_tokens=10, num_beams=beams)
    results = rag_token_beam_search(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS)
    assert fake.max_rows <= len(PROMPTS) * beams * k
    duplicated = False
    for rows in fake.history:
        assert len(rows) % k == 0
        blocks = [rows[i : i + k] for i in range(0, len(rows), k)]
        for block in blocks:
            # The K rows of a hypothesis: one question's K passages, in order, same prefix.
            assert len({prefix for _, prefix in block}) == 1
            assert [p for p, _ in block] in PROMPTS
        parents = [block[0][1][:-1] for block in blocks if block[0][1]]
        duplicated |= len(parents) != len(set(parents))
    assert duplicated, "some parent should have had two surviving children"
    # Every reported score equals a fresh rescoring of the answer (Generator.logprobs).
    for b, result in enumerate(results):
        answers = [list(h.token_ids) for h in result.nbest]
        scored = fake.logprobs([PROMPTS[b]] * len(answers), answers)
        prior = LOG_PRIOR[b].expand(len(answers), -1)
        exact = rag_token_logprob(prior, scored.logprobs, scored.mask).tolist()
        assert [h.logprob for h in result.nbest] == pytest.approx(exact, abs=1e-5)
        per_passage = scored.sequence_logprobs().tolist()
        for h, row in zip(result.nbest, per_passage, strict=True):
            assert list(h.passage_logprobs) == pytest.approx(row, abs=1e-5)


def test_one_beam_equals_greedy() -> None:
    fake = FakeGenerator(vocab_size=V, seed=8)
    config = DecodingConfig(max_new_tokens=10, num_beams=1)
    for a, b in zip(
        rag_token_beam_search(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS),
        rag_token_greedy(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS),
        strict=True,
    ):
        assert a.token_ids == b.token_ids and a.logprob == pytest.approx(b.logprob, abs=1e-6)
    for a, b in zip(
        beam_search(fake, ["a", "b", "c"], config, eos_ids=EOS),
        greedy(fake, ["a", "b", "c"], config, eos_ids=EOS),
        strict=True,
    ):
        assert a.token_ids == b.token_ids and a.logprob == pytest.approx(b.logprob, abs=1e-6)


def test_k1_rag_token_beam_equals_plain_beam() -> None:
    fake = FakeGenerator(vocab_size=V, seed=9)
    config = DecodingConfig(max_new_tokens=8, num_beams=3)
    prompts = ["x", "y"]
    plain = beam_search(fake, prompts, config, eos_ids=EOS)
    rag = rag_token_beam_search(
        fake, [[p] for p in prompts], torch.zeros(2, 1), config, eos_ids=EOS
    )
    for a, b in zip(plain, rag, strict=True):
        assert [h.token_ids for h in a.nbest] == [h.token_ids for h in b.nbest]
        assert [h.logprob for h in a.nbest] == [h.logprob for h in b.nbest]  # exactly


def test_batched_equals_one_question_at_a_time() -> None:
    fake = FakeGenerator(vocab_size=V, seed=10, scale=1.0)
    config = DecodingConfig(max_new_tokens=9, num_beams=3)
    batched = rag_token_beam_search(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS)
    for b in range(len(PROMPTS)):
        (single,) = rag_token_beam_search(
            fake, PROMPTS[b : b + 1], LOG_PRIOR[b : b + 1], config, eos_ids=EOS
        )
        assert [h.token_ids for h in single.nbest] == [h.token_ids for h in batched[b].nbest]
        assert [h.logprob for h in single.nbest] == pytest.approx(
            [h.logprob for h in batched[b].nbest], abs=1e-6
        )


def test_early_stopping_saves_steps() -> None:
    # An answer that ends on EOS with high probability stops the search long before
    # max_new_tokens: no live hypothesis can catch up once n-best are finished.
    fake = FakeGenerator(vocab_size=V, seed=12, scale=1.0)
    config = DecodingConfig(max_new_tokens=40, num_beams=2, num_return=1)
    (result,) = beam_search(fake, ["a"], config, eos_ids=EOS)
    assert result.best.stop_reason == "eos"
    assert len(fake.history) < 40
