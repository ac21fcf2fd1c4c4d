"""Greedy decoding, plain and RAG-Token, against step-by-step argmax of the exact model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch

from mixrag.decoding import DecodingConfig, greedy, rag_token_greedy
from mixrag.mixture import rag_token_logprob
from tests.decoding import reference as ref
from tests.fakes import FakeGenerator

PROMPTS = [["q0 z0", "q0 z1", "q0 z2"], ["q1 z0", "q1 z1", "q1 z2"], ["q2 z0", "q2 z1", "q2 z2"]]
LOG_PRIOR = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.34, 0.33, 0.33]]))
EOS = {0}


def _manual_rag_token_greedy(
    fake: FakeGenerator, prompts: list[str], log_prior: list[float], limit: int
) -> tuple[list[int], str]:
    """argmax_v log Σ_j p(z_j) p(v|z_j, y_<i) one step at a time, in float64."""
    y: list[int] = []
    while True:
        mix = [
            math.log(
                sum(
                    math.exp(lp + float(fake.next_logprobs(p, y)[v]))
                    for p, lp in zip(prompts, log_prior, strict=True)
                )
            )
            for v in range(fake.vocab_size)
        ]
        y.append(max(range(fake.vocab_size), key=lambda v: mix[v]))
        if y[-1] in EOS:
            return y, "eos"
        if len(y) == limit:
            return y, "length"


def test_plain_greedy_is_stepwise_argmax() -> None:
    fake = FakeGenerator(vocab_size=7, seed=1)
    prompts = ["a", "b", "c", "d"]
    results = greedy(fake, prompts, DecodingConfig(max_new_tokens=12), eos_ids=EOS)
    for prompt, result in zip(prompts, results, strict=True):
        y, reason = _manual_rag_token_greedy(fake, [prompt], [0.0], 12)
        assert result.token_ids == tuple(y)
        assert result.best.stop_reason == reason
        assert result.logprob == pytest.approx(ref.plain_logprob(fake, prompt, y), abs=1e-5)
        assert result.passage_logprobs == ()
        assert len(result.nbest) == 1


@pytest.mark.parametrize("seed", range(4))
def test_rag_token_greedy_is_stepwise_argmax_of_the_mixture(seed: int) -> None:
    fake = FakeGenerator(vocab_size=7, seed=seed)
    results = rag_token_greedy(
        fake, PROMPTS, LOG_PRIOR, DecodingConfig(max_new_tokens=10), eos_ids=EOS
    )
    for b, result in enumerate(results):
        y, reason = _manual_rag_token_greedy(fake, PROMPTS[b], LOG_PRIOR[b].tolist(), 10)
        assert result.token_ids == tuple(y)
        assert result.best.stop_reason == reason
        exact = ref.rag_token_logprob(fake, PROMPTS[b], LOG_PRIOR[b].tolist(), y)
        assert result.logprob == pytest.approx(exact, abs=1e-5)
        # Per-passage log p_phi(y|x,z_j) is known exactly in RAG-Token decoding.
        for j, p in enumerate(PROMPTS[b]):
            assert result.passage_logprobs[j] == pytest.approx(
                ref.plain_logprob(fake, p, y), abs=1e-5
            )


def test_reported_logprob_equals_rescoring_with_generator_logprobs() -> None:
    fake = FakeGenerator(vocab_size=7, seed=5)
    results = rag_token_greedy(
        fake, PROMPTS, LOG_PRIOR, DecodingConfig(max_new_tokens=9), eos_ids=EOS
    )
    scored = fake.logprobs(PROMPTS, [list(r.token_ids) for r in results])
    rescored = rag_token_logprob(LOG_PRIOR, scored.logprobs, scored.mask)
    assert [r.logprob for r in results] == pytest.approx(rescored.tolist(), abs=1e-5)
    assert [list(r.passage_logprobs) for r in results] == [
        pytest.approx(row, abs=1e-5) for row in scored.sequence_logprobs().tolist()
    ]


def test_k1_rag_token_greedy_equals_plain_greedy() -> None:
    fake = FakeGenerator(vocab_size=7, seed=2)
    prompts = ["x", "y", "z"]
    config = DecodingConfig(max_new_tokens=15)
    plain = greedy(fake, prompts, config, eos_ids=EOS)
    rag = rag_token_greedy(fake, [[p] for p in prompts], torch.zeros(3, 1), config, eos_ids=EOS)
    for a, b in zip(plain, rag, strict=True):
        assert a.token_ids == b.token_ids
        assert a.logprob == b.logprob  # exactly: a one-passage mixture is the generator
        assert b.passage_logprobs == (a.logprob,)


def test_batched_equals_one_question_at_a_time() -> None:
    fake = FakeGenerator(vocab_size=7, seed=3)
    config = DecodingConfig(max_new_tokens=10)
    batched = rag_token_greedy(fake, PROMPTS, LOG_PRIOR, config, eos_ids=EOS)
    for b in range(len(PROMPTS)):
        (single,) = rag_token_greedy(
            fake, PROMPTS[b : b + 1], LOG_PRIOR[b : b + 1], config, eos_ids=EOS
        )
        assert single.token_ids == batched[b].token_ids
        assert single.logprob == pytest.approx(batched[b].logprob, abs=1e-6)


def test_rows_follow_the_question_and_finished_questions_leave() -> None:
    fake = FakeGenerator(vocab_size=7, seed=4)
    results = rag_token_greedy(
        fake, PROMPTS, LOG_PRIOR, DecodingConfig(max_new_tokens=10), eos_ids=EOS
    )
    lengths = [len(r.token_ids) for r in results]
    assert len(set(lengths)) > 1, "pick a seed where questions finish at different steps"
    for step, rows in enumerate(fake.history):
        alive = [b for b in range(3) if lengths[b] > step]
        # Rows are (question, passage) blocks, every passage on the same prefix.
        assert rows == [
            (PROMPTS[b][j], results[b].token_ids[:step]) for b in alive for j in range(3)
        ]
    assert fake.n_start == 1 and len(fake.history) == max(lengths)


def test_stop_reasons_eos_set_callable_and_length() -> None:
    fake = FakeGenerator(vocab_size=7, seed=6)
    config = DecodingConfig(max_new_tokens=6)
    # Several EOS ids: everything but 0 and 1 ends the answer at once.
    results = greedy(fake, ["a", "b", "c"], config, eos_ids={2, 3, 4, 5, 6})
    for r in results:
        if r.best.stop_reason == "eos":
            assert r.token_ids[-1] >= 2 and all(t < 2 for t in r.token_ids[:-1])
        else:
            assert r.best.stop_reason == "length" and len(r.token_ids) == 6
    # A stop callable ends it after the token that satisfies it (kept in the answer).
    seen: list[tuple[int, ...]] = []

    def stop(ids: Sequence[int]) -> bool:
        seen.append(tuple(ids))
        return len(seen[-1]) >= 2

    results = greedy(fake, ["a", "b"], config, eos_ids=set(), stop=stop)
    assert all(len(r.token_ids) == 2 and r.best.stop_reason == "stop" for r in results)
    # And with neither, max_new_tokens.
    results = greedy(fake, ["a"], DecodingConfig(max_new_tokens=3), eos_ids=set())
    assert len(results[0].token_ids) == 3 and results[0].best.stop_reason == "length"


def test_zero_prior_passage_is_ignored() -> None:
    fake = FakeGenerator(vocab_size=7, seed=7)
    config = DecodingConfig(max_new_tokens=8)
    two = torch.log_softmax(LOG_PRIOR[:, :2], dim=1)
    padded = torch.cat([two, torch.full((3, 1), float("-inf"))], dim=1)
    full = rag_token_greedy(fake, PROMPTS, padded, config, eos_ids=EOS)
    dropped = rag_token_greedy(fake, [p[:2] for p in PROMPTS], two, config, eos_ids=EOS)
    for a, b in zip(full, dropped, strict=True):
        assert a.token_ids == b.token_ids
        assert a.logprob == pytest.approx(b.logprob, abs=1e-6)


def test_empty_batch_and_bad_prompts() -> None:
    fake = FakeGenerator()
    assert greedy(fake, [], DecodingConfig(), eos_ids=EOS) == []
    assert fake.n_start == 0
    with pytest.raises(ValueError, match="K=3"):
        rag_token_greedy(fake, [["a", "b"]], torch.zeros(1, 3), DecodingConfig(), eos_ids=EOS)
    with pytest.raises(ValueError, match="finite log prior"):
        rag_token_greedy(
            fake, [["a"], ["b"]], torch.tensor([[0.0], [-math.inf]]), DecodingConfig(), eos_ids=EOS
        )
    with pytest.raises(ValueError, match="string"):
        greedy(fake, "abc", DecodingConfig(), eos_ids=EOS)
    with pytest.raises(ValueError, match="max_new_tokens"):
        DecodingConfig(max_new_tokens=0)
    with pytest.raises(ValueError, match="length_penalty"):
        DecodingConfig(length_penalty=-1.0)
