"""A tiny deterministic generator for tests: both generator protocols, no model.

:class:`FakeGenerator` has a vocabulary of ``vocab_size`` ids (id ``eos_id`` plays
end-of-sequence). Its next-token distribution after prompt P and prefix y_<i is a
fixed function of sha256(seed, P, y_<i): seeded Gaussian logits, log-softmaxed in
float64 and rounded to float32. ``logprobs`` (scoring) and ``start``/``advance``
(decoding) read the same table, so the two paths agree exactly, as a real
generator's should up to rounding. The decode state records what each row holds
at every step, so tests can check the decoders' row bookkeeping.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from mixrag.generator.base import TokenLogprobs


class FakeGenerator:
    """Implements :class:`~mixrag.generator.base.StepGenerator` with a hash-seeded table."""

    def __init__(
        self, vocab_size: int = 7, *, seed: int = 0, scale: float = 2.0, eos_id: int = 0
    ) -> None:
        self.vocab_size = vocab_size
        self.seed = seed
        self.scale = scale
        self.eos_id = eos_id
        self._cache: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
        # Bookkeeping read by tests.
        self.n_start = 0
        self.n_advance = 0
        self.n_logprobs_calls = 0
        self.max_rows = 0
        self.history: list[list[tuple[str, tuple[int, ...]]]] = []  # rows at each logprobs()

    def next_logprobs(self, prompt: str, prefix: Sequence[int]) -> torch.Tensor:
        """[V] float32 log p(v | prompt, prefix)."""
        key = (prompt, tuple(prefix))
        if key not in self._cache:
            text = f"{self.seed}\x1f{prompt}\x1f{','.join(map(str, key[1]))}"
            digest = hashlib.sha256(text.encode()).digest()
            g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
            logits = torch.randn(self.vocab_size, generator=g, dtype=torch.float64) * self.scale
            self._cache[key] = torch.log_softmax(logits, dim=-1).to(torch.float32)
        return self._cache[key]

    # Generator
    def logprobs(
        self,
        prompts: Sequence[Sequence[str]],
        answers: Sequence[Sequence[int]],
    ) -> TokenLogprobs:
        self.n_logprobs_calls += 1
        assert len(prompts) == len(answers), (len(prompts), len(answers))
        b = len(prompts)
        k = len(prompts[0]) if b else 0
        assert all(len(row) == k for row in prompts), "every prompts[b] must have length K"
        t = max((len(a) for a in answers), default=0)
        lp = torch.zeros(b, k, t)
        mask = torch.zeros(b, t, dtype=torch.bool)
        for i, answer in enumerate(answers):
            mask[i, : len(answer)] = True
            for j, prompt in enumerate(prompts[i]):
                for pos, token in enumerate(answer):
                    lp[i, j, pos] = self.next_logprobs(prompt, answer[:pos])[token]
        return TokenLogprobs(lp, mask)

    # StepGenerator
    def start(self, prompts: Sequence[str]) -> FakeDecodeState:
        assert not isinstance(prompts, str)
        self.n_start += 1
        return FakeDecodeState(self, list(prompts))


class FakeDecodeState:
    """Rows of (prompt, prefix); validates every ``advance`` like a strict backend would."""

    def __init__(self, generator: FakeGenerator, prompts: list[str]) -> None:
        self.generator = generator
        self.prompts = prompts
        self.prefixes: list[tuple[int, ...]] = [() for _ in prompts]
        generator.max_rows = max(generator.max_rows, len(prompts))

    def logprobs(self) -> torch.Tensor:
        self.generator.history.append(list(zip(self.prompts, self.prefixes, strict=True)))
        rows = [
            self.generator.next_logprobs(p, y)
            for p, y in zip(self.prompts, self.prefixes, strict=True)
        ]
        return torch.stack(rows) if rows else torch.zeros(0, self.generator.vocab_size)

    def advance(self, tokens: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        assert tokens.dim() == 1 and tokens.dtype == torch.int64, (tokens.dtype, tokens.shape)
        if rows is None:
            assert tokens.numel() == len(self.prompts), (tokens.numel(), len(self.prompts))
        else:
            assert rows.dim() == 1 and rows.dtype == torch.int64, (rows.dtype, rows.shape)
            assert rows.numel() == tokens.numel(), (rows.numel(), tokens.numel())
            assert rows.numel() == 0 or (
                int(rows.min()) >= 0 and int(rows.max()) < len(self.prompts)
            ), rows
            self.prompts = [self.prompts[r] for r in rows.tolist()]
            self.prefixes = [self.prefixes[r] for r in rows.tolist()]
        assert all(0 <= t < self.generator.vocab_size for t in tokens.tolist()), tokens
        self.prefixes = [(*y, t) for y, t in zip(self.prefixes, tokens.tolist(), strict=True)]
        self.generator.n_advance += 1
        self.generator.max_rows = max(self.generator.max_rows, len(self.prompts))
