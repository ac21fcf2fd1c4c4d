"""A training run's randomness, kept off the process-wide random generators.

Training draws random numbers where torch gives no way to pass a ``torch.Generator``:
peft initialises LoRA adapters, module constructors initialise weights before a
checkpoint's are loaded over them, and dropout (the generator's, LoRA's, q(x)'s when
``query_dropout``) draws during every training forward pass, all from torch's global
generators. Each of those runs inside ``torch.random.fork_rng``, which puts the
process-wide state back when it ends, so constructing or running a ``Trainer`` leaves
the caller's random numbers as they were. The data order uses its own
``random.Random`` (``loop.example_order``); the dev sample its own seed.

* :func:`seeded`: a block that sees the global generators seeded with ``seed``
  (adapter initialisation: the same seed gives the same adapters);
* :func:`isolated`: a block whose draws do not reach the caller (model loading);
* :class:`RunRNG`: the run's own stream, a ``torch.Generator`` installed as the global
  generator for a block and taken back after it (dropout). Its state travels in the
  checkpoint, so a resumed run draws what the uninterrupted one would have.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def _cuda_devices() -> list[int]:
    """The CUDA devices whose generators a block may draw from: those in use."""
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return []
    return list(range(torch.cuda.device_count()))


@contextmanager
def isolated() -> Iterator[None]:
    """Draws from torch's global generators inside stay inside (``fork_rng``)."""
    with torch.random.fork_rng(devices=_cuda_devices()):
        yield


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """torch's global generators seeded with ``seed`` inside, as they were after."""
    with isolated():
        torch.manual_seed(seed)
        yield


class RunRNG:
    """The random stream of one training run (CPU: a ``torch.Generator``; CUDA: the
    device states, seeded alike), installed as torch's global generator by
    :meth:`active` for the code that can only draw from the global one."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self._cuda: list[torch.Tensor] | None = None

    def get_state(self) -> torch.Tensor:
        """The CPU stream's state (a checkpoint keeps it)."""
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Inside: the global generators draw this run's stream, continued from where the
        last block left it. After: the process-wide states are the caller's again."""
        devices = _cuda_devices()
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.generator.get_state())
            if devices:
                if self._cuda is None:
                    torch.cuda.manual_seed_all(self.seed)
                else:
                    torch.cuda.set_rng_state_all(self._cuda)
            try:
                yield
            finally:
                self.generator.set_state(torch.get_rng_state())
                if devices:
                    self._cuda = list(torch.cuda.get_rng_state_all())
