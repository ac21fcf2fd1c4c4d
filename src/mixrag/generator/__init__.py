"""Generators p_phi(y | x, z): the protocol, the transformers backend, the prompt format.

``TransformersGenerator`` (in ``hf``) imports torch only; transformers loads when a
model does.
"""

from mixrag.generator.base import DecodeState, Generator, StepGenerator, TokenLogprobs
from mixrag.generator.config import GeneratorConfig
from mixrag.generator.hf import HFDecodeState, TransformersGenerator
from mixrag.generator.models import BUNDLED
from mixrag.generator.prompts import PromptFormat, clean_answer, is_finished

__all__ = [
    "BUNDLED",
    "DecodeState",
    "Generator",
    "GeneratorConfig",
    "HFDecodeState",
    "PromptFormat",
    "StepGenerator",
    "TokenLogprobs",
    "TransformersGenerator",
    "clean_answer",
    "is_finished",
]
