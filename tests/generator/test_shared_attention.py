"""Attention over a head kept once equals attention over rows that each hold a copy.

Reference: PyTorch's SDPA (through transformers) on the concatenated keys and values.
"""

from __future__ import annotations

import dataclasses
import types

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from mixrag.generator import PassageCache, TransformersGenerator
from mixrag.generator.prompts import PromptFormat
from mixrag.generator.shared_attention import SHARED_KV, shared_prefix_attention
from tests.generator.helpers import PASSAGES, QUESTIONS

ATOL = 1e-4
B, HQ, HKV, D, H, S = 3, 6, 2, 16, 7, 5


def _module() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        layer_idx=0, num_key_value_groups=HQ // HKV, training=False, is_causal=True
    )


def _inputs(t: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(B, t, HQ, D, generator=g).transpose(1, 2)  # as the model passes it
    head_k, head_v = torch.randn(2, 1, HKV, H, D, generator=g)
    key, value = torch.randn(2, B, HKV, S, D, generator=g)
    return query, head_k, head_v, key, value


def _reference(query, head_k, head_v, key, value, mask):  # type: ignore[no-untyped-def]
    full_k = torch.cat([head_k.expand(B, -1, -1, -1), key], dim=2)
    full_v = torch.cat([head_v.expand(B, -1, -1, -1), value], dim=2)
    t = query.shape[2]
    if mask is None:  # causal: query i sees the head and own columns <= S - t + i
        own = torch.arange(S)[None, :] <= torch.arange(t)[:, None] + (S - t)
        mask = own.expand(B, 1, t, S)
    head_on = torch.ones(B, 1, t, H, dtype=mask.dtype)
    if mask.dtype != torch.bool:
        head_on = torch.zeros(B, 1, t, H)
    full_mask = torch.cat([head_on, mask], dim=-1)
    return sdpa_attention_forward(_module(), query, full_k, full_v, full_mask)[0]


@pytest.mark.parametrize("t", [1, 3])
@pytest.mark.parametrize("kind", ["none", "bool", "float"])
def test_split_attention_equals_attention_over_the_concatenation(t: int, kind: str) -> None:
    query, head_k, head_v, key, value = _inputs(t)
    mask: torch.Tensor | None = None
    if kind != "none":
        allowed = torch.arange(S)[None, :] <= torch.arange(t)[:, None] + (S - t)
        allowed = allowed.expand(B, 1, t, S).clone()
        allowed[0, :, :, :2] = False  # row 0 is left-padded by two columns
        mask = allowed
        if kind == "float":
            mask = torch.zeros(B, 1, t, S).masked_fill(~allowed, float("-inf"))
    got, weights = shared_prefix_attention(
        _module(), query, key, value, mask, **{SHARED_KV: [(head_k, head_v)]}
    )
    assert weights is None and got.shape == (B, t, HQ, D)
    ref = _reference(query, head_k, head_v, key, value, mask)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_without_a_shared_head_it_is_sdpa() -> None:
    query, _hk, _hv, key, value = _inputs(2, seed=1)
    got = shared_prefix_attention(_module(), query, key, value, None)[0]
    ref = sdpa_attention_forward(_module(), query, key, value, None)[0]
    assert torch.equal(got, ref)


def test_a_row_whose_own_columns_are_all_masked_still_reads_the_head() -> None:
    query, head_k, head_v, key, value = _inputs(1, seed=2)
    mask = torch.ones(B, 1, 1, S, dtype=torch.bool)
    mask[1] = False
    got = shared_prefix_attention(
        _module(), query, key, value, mask, **{SHARED_KV: [(head_k, head_v)]}
    )[0]
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, _reference(query, head_k, head_v, key, value, mask))


def test_a_head_kept_in_float32_is_read_by_a_bfloat16_pass() -> None:
    # a frozen generator's training pass under bfloat16 autocast reads a float32 head
    query, head_k, head_v, key, value = _inputs(3, seed=3)
    q16, k16, v16 = (x.to(torch.bfloat16) for x in (query, key, value))
    got = shared_prefix_attention(
        _module(), q16, k16, v16, None, **{SHARED_KV: [(head_k, head_v)]}
    )[0]
    assert got.dtype == torch.bfloat16
    ref = _reference(query, head_k, head_v, key, value, None)
    torch.testing.assert_close(got.float(), ref, atol=0.05, rtol=0.05)


# ---------------------------------------------------------------- a real model


def _twin(gen: TransformersGenerator, cache: PassageCache, shared: bool) -> TransformersGenerator:
    config = dataclasses.replace(gen.config, shared_head=shared)
    return TransformersGenerator(
        config, model=gen.model, tokenizer=gen.tokenizer, passage_cache=cache
    )


@pytest.mark.slow
def test_decoding_on_a_shared_head_equals_rows_with_copies(smollm2: TransformersGenerator) -> None:
    fmt = PromptFormat(few_shot=True)
    prompts = [smollm2.render(fmt.passage(QUESTIONS[0], p), passage=p) for p in PASSAGES]
    cache = PassageCache()
    shared, copied = _twin(smollm2, cache, True), _twin(smollm2, cache, False)
    a, b = shared.start(prompts), copied.start(prompts)
    assert a.shares_head and not b.shares_head
    torch.testing.assert_close(a.logprobs(), b.logprobs(), atol=ATOL, rtol=0)
    # beam-style steps: rows duplicated, dropped and re-ordered, one token each
    for rows in ([0, 0, 1, 2, 2], [4, 3, 0], [2, 2, 1, 0]):
        tokens = a.logprobs()[rows].argmax(-1)
        a.advance(tokens, torch.tensor(rows))
        b.advance(tokens, torch.tensor(rows))
        torch.testing.assert_close(a.logprobs(), b.logprobs(), atol=ATOL, rtol=0)
    # merged with rows of another head (continuous batching): each row keeps its numbers
    other = copied.start(prompts[:2])
    before = torch.cat([a.logprobs(), other.logprobs()])
    a.extend(other)
    assert not a.shares_head
    torch.testing.assert_close(a.logprobs(), before, atol=ATOL, rtol=0)
    tokens = a.logprobs().argmax(-1)
    a.advance(tokens)
    b.advance(tokens[: b.num_rows])
    torch.testing.assert_close(a.logprobs()[: b.num_rows], b.logprobs(), atol=ATOL, rtol=0)
    # two states on the same head merge without copying it
    c, d = shared.start(prompts[:1]), shared.start(prompts[1:])
    c.extend(d)
    assert c.shares_head
    torch.testing.assert_close(c.logprobs(), shared.start(prompts).logprobs(), atol=ATOL, rtol=0)


def test_the_flash_and_the_plain_split_agree() -> None:
    from mixrag.generator import shared_attention

    if shared_attention._FLASH is None:
        pytest.skip("this torch has no CPU flash kernel")
    for t in (1, 4):
        query, head_k, head_v, key, value = _inputs(t, seed=3)
        mask = torch.ones(B, 1, t, S, dtype=torch.bool)
        mask[2, :, :, :3] = False
        flash = shared_attention._split_flash(query, key, value, mask, head_k, head_v, None)
        plain = shared_attention._split_math(query, key, value, mask, head_k, head_v, None)
        torch.testing.assert_close(flash, plain, atol=1e-5, rtol=1e-5)
