"""Prompt rendering and tokenisation on the tiny converted models (chat and base)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mixrag.generator import GeneratorConfig, TransformersGenerator
from mixrag.generator.prompts import PromptFormat
from mixrag.types import Passage
from tests.generator.tiny_gguf import write_tiny_gguf

PASSAGE = Passage("p", "d", "Lake Orra", "Lake Orra is fed by the Tamsin River.")


@pytest.fixture(scope="module")
def tiny_chat(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> TransformersGenerator:
    cache = str(tmp_path_factory.mktemp("cache"))
    return TransformersGenerator(GeneratorConfig(model=str(tiny_gguf), cache_dir=cache)).load()


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> TransformersGenerator:
    folder = tmp_path_factory.mktemp("base")
    path = write_tiny_gguf(folder / "tiny-base.gguf", chat_template=None)
    cfg = GeneratorConfig(model=str(path), cache_dir=str(folder / "cache"))
    return TransformersGenerator(cfg).load()


def test_chat_model_uses_its_template(tiny_chat: TransformersGenerator) -> None:
    msgs = PromptFormat(style="short", few_shot=False).passage("Which river?", PASSAGE)
    text = tiny_chat.render(msgs)
    assert text.startswith("<|im_start|>system\nAnswer the question")
    assert text.endswith("Question: Which river?<|im_end|>\n<|im_start|>assistant\n")
    ids = tiny_chat.encode_prompt(text)
    assert ids[0] == 1 and ids.count(1) == 3  # <|im_start|> per turn, no extra BOS
    assert tiny_chat.eos_ids == (0, 2)  # <|endoftext|>, <|im_end|>
    assert tiny_chat.decode(tiny_chat.encode_answer("Tamsin")) == "Tamsin"


def test_base_model_gets_plain_layout(tiny_base: TransformersGenerator) -> None:
    msgs = PromptFormat(style="short", few_shot=True).passage("Which river?", PASSAGE)
    text = tiny_base.render(msgs)
    assert "<|im_start|>" not in text
    assert text.endswith("Question: Which river?\nAnswer:")
    assert "\nAnswer: the Sella River\n\n" in text  # few-shot turns, answer after a space
    # the answer continues "Answer:" after a space, and decodes back without it
    assert tiny_base.encode_answer("Tamsin")[0] == tiny_base.encode_prompt(" ")[0]
    assert tiny_base.decode(tiny_base.encode_answer("Tamsin")) == "Tamsin"


def test_tiny_scoring_matches_full_forward(tiny_chat: TransformersGenerator) -> None:
    prompts = [[tiny_chat.render(PromptFormat().passage(q, PASSAGE)) for q in ("a?", "bb?")]]
    answer = tiny_chat.encode_answer("Tamsin River")
    got = tiny_chat.logprobs(prompts, [answer]).logprobs[0]
    for j, prompt in enumerate(prompts[0]):
        ids = tiny_chat.encode_prompt(prompt) + answer
        with torch.inference_mode():
            logp = tiny_chat.model(torch.tensor([ids])).logits[0].log_softmax(-1)
        start = len(ids) - len(answer)
        ref = torch.stack([logp[start - 1 + i, t] for i, t in enumerate(answer)])
        torch.testing.assert_close(got[j], ref, atol=1e-5, rtol=0)
