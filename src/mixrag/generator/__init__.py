"""Generators p_phi(y | x, z): the protocol, the transformers backend, the prompt format.

``TransformersGenerator`` (in ``hf``) imports torch only; transformers loads when a
model does.
"""

from mixrag.generator.base import DecodeState, Generator, StepGenerator, TokenLogprobs
from mixrag.generator.config import GeneratorConfig
from mixrag.generator.decode_state import HFDecodeState
from mixrag.generator.hf import TransformersGenerator
from mixrag.generator.models import BUNDLED
from mixrag.generator.passage_cache import PassageCache
from mixrag.generator.prompts import Prompt, PromptFormat, clean_answer, is_finished

__all__ = [
    "BUNDLED",
    "DecodeState",
    "Generator",
    "GeneratorConfig",
    "HFDecodeState",
    "PassageCache",
    "Prompt",
    "PromptFormat",
    "StepGenerator",
    "TokenLogprobs",
    "TransformersGenerator",
    "clean_answer",
    "is_finished",
]
