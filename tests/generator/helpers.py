"""Inputs and the exact reference shared by the generator tests."""

from __future__ import annotations

import torch

from mixrag.generator import TransformersGenerator
from mixrag.types import Passage

PASSAGES = [
    Passage("a", "a", "Paris", "Paris is the capital and largest city of France."),
    Passage(
        "b",
        "b",
        "Berlin",
        "Berlin is the capital of Germany. It was divided by a wall from 1961 to 1989, "
        "and is now known for its museums, its music and its many parks.",
    ),
    Passage("c", "c", "Rome", "Rome."),
]
QUESTIONS = ["What is the capital of France?", "When was the Berlin Wall built?"]


def full_forward(gen: TransformersGenerator, prompt: str, answer: list[int]) -> torch.Tensor:
    """[T] log p(y_i | prompt, y_<i) from one unpadded forward and a full log-softmax."""
    ids = gen.encode_prompt(prompt) + answer
    with torch.inference_mode():
        logp = gen.model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
    start = len(ids) - len(answer)
    return torch.stack([logp[start - 1 + i, t] for i, t in enumerate(answer)])
