"""The ``on_prefix`` hook every decoder takes: what a server streams while decoding."""

from __future__ import annotations

import pytest
import torch

from mixrag.decoding import (
    DecodingConfig,
    beam_search,
    greedy,
    rag_sequence_fast,
    rag_sequence_thorough,
    rag_token_beam_search,
    rag_token_greedy,
)
from tests.fakes import FakeGenerator

PROMPTS = [["q0 z0", "q0 z1", "q0 z2"], ["q1 z0", "q1 z1", "q1 z2"]]
LOG_PRIOR = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
EOS = {0}
CFG = DecodingConfig(max_new_tokens=8, num_beams=3)


def _recorder() -> tuple[dict[int, list[tuple[int, ...]]], object]:
    seen: dict[int, list[tuple[int, ...]]] = {}

    def on_prefix(q: int, ids: tuple[int, ...]) -> None:
        seen.setdefault(q, []).append(ids)

    return seen, on_prefix


def test_greedy_prefixes_grow_one_token_a_step_and_end_at_the_answer() -> None:
    fake = FakeGenerator(vocab_size=7, seed=2)
    for run in (
        lambda cb: greedy(fake, ["a", "b", "c"], CFG, eos_ids=EOS, on_prefix=cb),
        lambda cb: rag_token_greedy(fake, PROMPTS, LOG_PRIOR, CFG, eos_ids=EOS, on_prefix=cb),
    ):
        seen, cb = _recorder()
        results = run(cb)
        for q, result in enumerate(results):
            steps = seen[q]
            assert [len(s) for s in steps] == list(range(1, len(result.token_ids) + 1))
            assert steps[-1] == result.token_ids
            assert all(steps[i + 1][: i + 1] == steps[i] for i in range(len(steps) - 1))


def test_the_hook_does_not_change_what_is_decoded() -> None:
    fake = FakeGenerator(vocab_size=7, seed=3)
    calls = [
        lambda **kw: beam_search(fake, ["a", "b"], CFG, eos_ids=EOS, **kw),
        lambda **kw: rag_token_beam_search(fake, PROMPTS, LOG_PRIOR, CFG, eos_ids=EOS, **kw),
        lambda **kw: rag_sequence_thorough(fake, PROMPTS, LOG_PRIOR, CFG, eos_ids=EOS, **kw),
        lambda **kw: rag_sequence_fast(fake, PROMPTS, LOG_PRIOR, CFG, eos_ids=EOS, **kw),
    ]
    for call in calls:
        seen, cb = _recorder()
        with_hook = call(on_prefix=cb)
        assert with_hook == call()
        assert set(seen) == set(range(len(with_hook)))  # every question reported
        assert all(s for steps in seen.values() for s in steps)


def test_rag_sequence_follows_the_beam_of_the_passage_of_highest_prior() -> None:
    fake = FakeGenerator(vocab_size=7, seed=4)
    seen, cb = _recorder()
    rag_sequence_thorough(fake, PROMPTS, LOG_PRIOR, CFG, eos_ids=EOS, on_prefix=cb)
    lead = [0, 2]  # argmax of each row of LOG_PRIOR
    alone, cb_alone = _recorder()
    beam_search(fake, [PROMPTS[q][lead[q]] for q in range(2)], CFG, eos_ids=EOS, on_prefix=cb_alone)
    # the same leaders step by step, until the search stops: its beam is done, or nothing
    # it could still produce can change the answer (then it stops early)
    assert set(seen) == set(alone)
    for q, steps in seen.items():
        assert steps and steps == alone[q][: len(steps)]


def test_an_exception_from_the_hook_aborts_decoding() -> None:
    fake = FakeGenerator(vocab_size=7, seed=5)

    def stop_now(q: int, ids: tuple[int, ...]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rag_token_greedy(fake, PROMPTS, LOG_PRIOR, CFG, eos_ids=EOS, on_prefix=stop_now)
