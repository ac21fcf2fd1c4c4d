"""A run's randomness stays off the process-wide generators, and continues across blocks."""

from __future__ import annotations

import torch

from mixrag.train.rng import RunRNG, isolated, seeded


def test_isolated_and_seeded_blocks_leave_the_global_state_alone() -> None:
    before = torch.get_rng_state()
    with isolated():
        torch.rand(5)
    with seeded(3):
        inside = torch.rand(4)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(inside, torch.rand(4, generator=torch.Generator().manual_seed(3)))
    with seeded(3):  # the same seed, the same numbers (e.g. LoRA adapters)
        assert torch.equal(torch.rand(4), inside)


def test_a_run_stream_continues_across_blocks_and_through_a_checkpoint() -> None:
    before = torch.get_rng_state()
    rng = RunRNG(seed=5)
    with rng.active():
        first = torch.rand(3)  # what dropout would draw
    torch.rand(7)  # the caller's own draws in between do not disturb the run's stream
    after_caller = torch.get_rng_state()
    with rng.active():
        second = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), after_caller)
    reference = torch.Generator().manual_seed(5)
    assert torch.equal(torch.cat([first, second]), torch.rand(6, generator=reference))

    saved = rng.get_state()
    resumed = RunRNG(seed=5)
    resumed.set_state(saved)
    with rng.active(), torch.random.fork_rng(devices=[]):
        expected = torch.rand(3)
    with resumed.active():
        assert torch.equal(torch.rand(3), expected)
    torch.set_rng_state(before)
