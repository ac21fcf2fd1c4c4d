"""Generators p_phi(y | x, z): the protocol, the transformers backend, the prompt format."""

from mixrag.generator.base import DecodeState, Generator, StepGenerator, TokenLogprobs

__all__ = ["DecodeState", "Generator", "StepGenerator", "TokenLogprobs"]
