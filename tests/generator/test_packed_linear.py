"""Pre-packed bfloat16 linear layers: the plain layer's results, its parameters, its
gradients; repacked when the weight changes; a generator answers the same with them."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
import torch
from torch import nn

from mixrag.decoding import greedy_answers
from mixrag.generator import TransformersGenerator, packed_linear
from mixrag.generator.packed_linear import PackedLinear
from mixrag.generator.passage_cache import weights_hash
from mixrag.generator.prompts import PromptFormat
from tests.generator.helpers import PASSAGES, QUESTIONS

needs_onednn_bf16 = pytest.mark.skipif(
    not packed_linear.available(), reason="no native bfloat16 oneDNN linear on this CPU"
)

# the plain bfloat16 path differs from itself by one bfloat16 step between row counts;
# one step of the largest outputs here (|y| < 64) is 0.25
BF16_TOL = {"atol": 0.5, "rtol": 0.0}


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(96, 256), nn.SiLU(), nn.Linear(256, 40, bias=False)).to(
        torch.bfloat16
    )


@needs_onednn_bf16
@pytest.mark.parametrize("shape", [(1, 96), (7, 96), (3, 5, 96), (2, 50, 96)])
def test_packed_layers_give_the_plain_layers_results(shape: tuple[int, ...]) -> None:
    plain = _model()
    packed = copy.deepcopy(plain)
    assert packed_linear.install(packed) == 2
    assert all(type(m) is PackedLinear for m in (packed[0], packed[2]))
    x = torch.randn(*shape, dtype=torch.bfloat16)
    with torch.inference_mode():
        want, got = plain(x), packed(x)
    assert got.shape == want.shape and got.dtype == torch.bfloat16
    torch.testing.assert_close(got, want, **BF16_TOL)
    # far from the float32 product no more than the plain path is
    ref = plain.float()(x.float()).detach()
    assert (got.float() - ref).abs().max() <= (want.float() - ref).abs().max() + 0.5


@needs_onednn_bf16
def test_parameters_state_dict_and_fingerprint_are_untouched() -> None:
    plain = _model()
    before = weights_hash(plain)
    params = list(plain.parameters())
    packed_linear.install(plain)
    assert list(plain.parameters()) == params
    assert weights_hash(plain) == before
    assert set(plain.state_dict()) == {"0.weight", "0.bias", "2.weight"}
    # copies and pickles carry the weights, not the packed copy, and still work
    for other in (copy.deepcopy(plain), pickle.loads(pickle.dumps(plain))):
        assert type(other[0]) is PackedLinear and "_packed" not in other[0].__dict__
        x = torch.randn(4, 96, dtype=torch.bfloat16)
        with torch.no_grad():
            torch.testing.assert_close(other(x), plain(x), atol=0, rtol=0)
    assert packed_linear.uninstall(plain) == 2 and type(plain[0]) is nn.Linear


@needs_onednn_bf16
def test_a_changed_weight_is_repacked() -> None:
    model = _model()
    packed_linear.install(model)
    layer = model[2]
    x = torch.randn(5, 256, dtype=torch.bfloat16)
    with torch.no_grad():
        first = layer(x)
        layer.weight.mul_(2)  # an optimizer step: in place, the version counter moves
        torch.testing.assert_close(layer(x), 2 * first, **BF16_TOL)
        layer.load_state_dict({"weight": torch.zeros_like(layer.weight)})
        assert layer(x).abs().max() == 0
        layer.weight = nn.Parameter(torch.ones_like(layer.weight))  # replaced outright
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight))
        # an edit through .data (peft's in-place merge) moves no version: install repacks
        layer.weight.data += 1
        assert packed_linear.install(model) == 2
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight))


@needs_onednn_bf16
def test_training_takes_the_plain_path_with_its_gradients() -> None:
    plain, packed = _model(), _model()
    packed_linear.install(packed)
    x = torch.randn(6, 96, dtype=torch.bfloat16)
    for m in (plain, packed):
        m(x).float().square().sum().backward()
    for a, b in zip(plain.parameters(), packed.parameters(), strict=True):
        assert b.grad is not None
        torch.testing.assert_close(b.grad, a.grad, atol=0, rtol=0)


def test_nothing_is_packed_where_it_is_unavailable_or_not_bfloat16(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert packed_linear.install(_model().float()) == 0  # float32 keeps MKL's kernels
    monkeypatch.setattr(packed_linear, "available", lambda: False)
    model = _model()
    assert packed_linear.install(model) == 0 and type(model[0]) is nn.Linear


@needs_onednn_bf16
def test_a_bfloat16_generator_scores_and_answers_the_same_packed(
    smollm2: TransformersGenerator,
) -> None:
    model = copy.deepcopy(smollm2.model).to(torch.bfloat16)
    cfg = dataclasses.replace(smollm2.config, dtype="bfloat16", passage_cache_mb=64)
    plain = TransformersGenerator(
        dataclasses.replace(cfg, packed_weights=False), model=model, tokenizer=smollm2.tokenizer
    )
    fmt = PromptFormat()
    prompts = [[plain.render(fmt.passage(q, p)) for p in PASSAGES] for q in QUESTIONS]
    answers = [plain.encode_answer("Paris"), plain.encode_answer("in 1961")]
    flat = [row[0] for row in prompts] + [prompts[1][1]]
    want = plain.logprobs(prompts, answers).logprobs
    want_text = greedy_answers(plain, flat, max_new_tokens=8)
    assert not any(type(m) is PackedLinear for m in model.modules())

    packed = TransformersGenerator(cfg, model=model, tokenizer=smollm2.tokenizer).load()
    assert any(type(m) is PackedLinear for m in model.modules())
    for _ in range(2):  # cold, then from the passage cache
        got = packed.logprobs(prompts, answers).logprobs
        # bfloat16 itself is ~0.2 from float32 here; packing adds (next to) nothing
        torch.testing.assert_close(got, want, atol=0.02, rtol=0)
    assert greedy_answers(packed, flat, max_new_tokens=8) == want_text
