"""The fake generator is trustworthy: scoring and step-wise decoding agree exactly."""

from __future__ import annotations

import pytest
import torch

from tests.fakes import FakeGenerator


def test_distributions_are_deterministic_normalised_and_prompt_dependent() -> None:
    a, b = FakeGenerator(seed=3), FakeGenerator(seed=3)
    assert torch.equal(a.next_logprobs("q", (1, 2)), b.next_logprobs("q", (1, 2)))
    assert torch.allclose(a.next_logprobs("q", ()).exp().sum(), torch.tensor(1.0))
    assert not torch.equal(a.next_logprobs("q", ()), a.next_logprobs("r", ()))
    assert not torch.equal(a.next_logprobs("q", ()), a.next_logprobs("q", (0,)))
    assert not torch.equal(a.next_logprobs("q", ()), FakeGenerator(seed=4).next_logprobs("q", ()))


def test_logprobs_equal_accumulated_start_advance() -> None:
    fake = FakeGenerator(vocab_size=6)
    prompts = ["alpha", "beta", "gamma"]
    g = torch.Generator().manual_seed(0)
    answers = torch.randint(0, 6, (3, 5), generator=g)
    state = fake.start(prompts)
    stepped = torch.zeros(3, 5)
    for i in range(5):
        lp = state.logprobs()  # [3, V]
        stepped[:, i] = lp.gather(1, answers[:, i : i + 1]).squeeze(1)
        state.advance(answers[:, i])
    scored = fake.logprobs([[p] for p in prompts], answers.tolist())
    assert torch.equal(scored.logprobs[:, 0], stepped)
    assert scored.mask.all()


def test_advance_rows_reorders_and_duplicates() -> None:
    fake = FakeGenerator(vocab_size=5)
    state = fake.start(["p0", "p1", "p2"])
    state.advance(torch.tensor([1, 2, 3]))
    state.advance(torch.tensor([4, 0]), rows=torch.tensor([2, 2]))
    state.advance(torch.tensor([1, 1, 2]), rows=torch.tensor([1, 0, 0]))
    lp = state.logprobs()
    expected = [("p2", (3, 0, 1)), ("p2", (3, 4, 1)), ("p2", (3, 4, 2))]
    for row, (prompt, prefix) in zip(lp, expected, strict=True):
        assert torch.equal(row, fake.next_logprobs(prompt, prefix))
    assert fake.history[-1] == expected


def test_logprobs_of_ragged_answers_under_k_prompts() -> None:
    fake = FakeGenerator(vocab_size=7)
    out = fake.logprobs([["a", "b"], ["c", "d"]], [[1, 2, 0], [3]])
    assert out.logprobs.shape == (2, 2, 3)
    assert out.mask.tolist() == [[True, True, True], [True, False, False]]
    assert out.logprobs[1, :, 1:].eq(0).all()
    assert out.logprobs[0, 1, 2].item() == fake.next_logprobs("b", (1, 2))[0].item()


def test_state_rejects_malformed_advance() -> None:
    state = FakeGenerator().start(["a", "b"])
    with pytest.raises(AssertionError):
        state.advance(torch.tensor([1]))  # one token for two rows
    with pytest.raises(AssertionError):
        state.advance(torch.tensor([1, 2], dtype=torch.int32))
    with pytest.raises(AssertionError):
        state.advance(torch.tensor([1]), rows=torch.tensor([2]))  # no row 2
