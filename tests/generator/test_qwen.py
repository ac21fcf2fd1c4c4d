"""Smoke test of the second bundled generator, Qwen2.5-0.5B-Instruct."""

from __future__ import annotations

import pytest
import torch

from mixrag.decoding import greedy_answers
from mixrag.generator import TransformersGenerator
from mixrag.generator.prompts import PromptFormat
from mixrag.types import Passage

pytestmark = pytest.mark.slow


def test_qwen_scores_and_decodes(qwen: TransformersGenerator) -> None:
    fmt = PromptFormat(few_shot=False)
    gold = Passage("a", "a", "Lake Orra", "Lake Orra is fed by the Tamsin River.")
    other = Passage("b", "b", "Copper", "Copper is a soft metal used in wires.")
    question = "Which river feeds Lake Orra?"
    prompts = [[qwen.render(fmt.passage(question, p)) for p in (gold, other)]]
    assert prompts[0][0].startswith("<|im_start|>system\n")
    answer = [*qwen.encode_answer("the Tamsin River"), qwen.eos_ids[-1]]
    scored = qwen.logprobs(prompts, [answer])
    seq = scored.sequence_logprobs()
    assert seq[0, 0] > seq[0, 1]  # the answer is likelier given the passage holding it
    single = qwen.logprobs([[prompts[0][1]]], [answer]).logprobs[0, 0]
    torch.testing.assert_close(scored.logprobs[0, 1], single, atol=1e-4, rtol=0)
    assert 151645 in qwen.eos_ids  # <|im_end|>
    (text,) = greedy_answers(qwen, [prompts[0][0]], max_new_tokens=8)
    assert "Tamsin" in text
