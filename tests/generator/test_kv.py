"""Caches built from plain tensors: no copy, the originals never written; rows joined in
one copy equal padding then concatenating."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import LlamaConfig

from mixrag.generator.decode_state import _stack_padded
from mixrag.generator.kv import layers_of, make_cache
from mixrag.generator.slack_cache import decoding_cache, trimmed

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


def _steps(cache: object, seed: int, n: int = 5) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """n single-column updates of layer 0, a re-order between them; the returned views."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        k, v = torch.randn(2, 2, 1, 8, generator=g), torch.randn(2, 2, 1, 8, generator=g)
        out.append(cache.update(k, v, 0))  # type: ignore[attr-defined]
        if i % 2:
            cache.reorder_cache(torch.tensor([1, 0]) if i == 1 else torch.tensor([1, 1]))  # type: ignore[attr-defined]
    return out


@torch.no_grad()
def test_slack_layers_append_what_dynamic_layers_concatenate() -> None:
    data = _layers(2, 5)
    plain, slack = make_cache(data, CONFIG), decoding_cache(data, CONFIG)
    want, got = _steps(plain, 3), _steps(slack, 3)
    for (wk, wv), (gk, gv) in zip(want, got, strict=True):
        assert torch.equal(wk, gk) and torch.equal(wv, gv)
    assert torch.equal(layers_of(plain)[0][0], layers_of(slack)[0][0])
    assert slack.get_seq_length() == plain.get_seq_length() == 10


@torch.no_grad()
def test_slack_layers_never_write_what_they_were_given_or_handed_out() -> None:
    data = _layers(2, 5)
    before = [(k.clone(), v.clone()) for k, v in data]
    cache = decoding_cache(data, CONFIG)
    k1, _ = cache.update(torch.ones(2, 2, 1, 8), torch.ones(2, 2, 1, 8), 0)
    view = k1.clone()
    for _ in range(3):  # in place, past the view's columns
        cache.update(torch.full((2, 2, 1, 8), 7.0), torch.full((2, 2, 1, 8), 7.0), 0)
    assert torch.equal(k1, view)
    assert cache.layers[0].keys.data_ptr() == k1.data_ptr()  # no copy: the same buffer
    for (k, v), (bk, bv) in zip(data, before, strict=True):
        assert torch.equal(k, bk) and torch.equal(v, bv)


def test_slack_layers_concatenate_when_autograd_records() -> None:
    data = [(k.requires_grad_(), v) for k, v in _layers(2, 3)]
    cache = decoding_cache(data, CONFIG)
    keys, _ = cache.update(torch.ones(2, 2, 1, 8), torch.ones(2, 2, 1, 8), 0)
    keys.sum().backward()
    assert data[0][0].grad is not None and torch.equal(data[0][0].grad, torch.ones(2, 2, 3, 8))
    assert cache.layers[0].buffers is None


@torch.no_grad()
def test_a_trimmed_slack_cache_keeps_appending_in_place() -> None:
    cache = decoding_cache(_layers(2, 6), CONFIG)
    for i in range(len(cache.layers)):
        cache.update(torch.ones(2, 2, 1, 8), torch.ones(2, 2, 1, 8), i)
    full = layers_of(cache)[0][0].clone()
    cut = trimmed(cache, 4, CONFIG)
    assert torch.equal(layers_of(cut)[0][0], full[:, :, 4:])
    ptr = cut.layers[0].keys.data_ptr()
    cut.update(torch.zeros(2, 2, 1, 8), torch.zeros(2, 2, 1, 8), 0)
    assert cut.layers[0].keys.data_ptr() == ptr and cut.get_seq_length() == 4
    assert torch.equal(layers_of(cut)[0][0][:, :, :3], full[:, :, 4:])
