"""Caches built from plain tensors: no copy, the originals never written; rows joined in
one copy equal padding then concatenating."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import LlamaConfig

from mixrag.generator.decode_state import _stack_padded
from mixrag.generator.kv import layers_of, make_cache

CONFIG = LlamaConfig(
    num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, hidden_size=32
)


def _layers(rows: int, width: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(rows, 2, width, 8, generator=g), torch.randn(rows, 2, width, 8, generator=g))
        for _ in range(CONFIG.num_hidden_layers)
    ]


def test_make_cache_holds_the_tensors_themselves() -> None:
    data = _layers(2, 5)
    cache = make_cache(data, CONFIG)
    for (k, v), (ck, cv) in zip(data, layers_of(cache), strict=True):
        assert ck is k and cv is v
    assert cache.get_seq_length() == 5


def test_updating_a_cache_leaves_the_tensors_it_was_made_from() -> None:
    data = _layers(2, 5)
    before = [(k.clone(), v.clone()) for k, v in data]
    cache = make_cache(data, CONFIG)
    new_k, new_v = torch.ones(2, 2, 1, 8), torch.ones(2, 2, 1, 8)
    keys, values = cache.update(new_k, new_v, 0)
    assert torch.equal(values[:, :, -1:], new_v)
    assert keys.shape == (2, 2, 6, 8) and torch.equal(keys[:, :, -1:], new_k)
    cache.reorder_cache(torch.tensor([1, 1]))
    for (k, v), (bk, bv) in zip(data, before, strict=True):
        assert torch.equal(k, bk) and torch.equal(v, bv)


def test_make_cache_refuses_data_for_another_depth() -> None:
    try:
        make_cache(_layers(1, 3)[:2], CONFIG)
    except ValueError as exc:
        assert "3 layers" in str(exc) and "2" in str(exc)
    else:
        raise AssertionError("a cache with too few layers was made")


def test_rows_joined_in_one_copy_equal_pad_then_cat() -> None:
    a, b = _layers(2, 4, seed=1)[0][0], _layers(3, 7, seed=2)[0][0]
    want = torch.cat([F.pad(a, (0, 0, 3, 0)), b])
    got = _stack_padded(a, b, 7)
    assert torch.equal(got, want)
    assert torch.equal(
        _stack_padded(b, a, 9), torch.cat([F.pad(b, (0, 0, 2, 0)), F.pad(a, (0, 0, 5, 0))])
    )


def test_joined_padding_is_zero() -> None:
    out = _stack_padded(torch.randn(1, 2, 1, 8), torch.randn(1, 2, 3, 8), 3)
    assert torch.equal(out[0, :, :2], torch.zeros(2, 2, 8))
