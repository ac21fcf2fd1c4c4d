"""bench/prompt_examples.py: its three extra examples go between the default ones and the
question, and the generator config it swaps in builds exactly that format."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from tests.helpers import REPO, load_script

from mixrag.generator import GeneratorConfig, PromptFormat
from mixrag.types import Passage


def _module() -> Any:
    sys.path.insert(0, str(REPO / "bench"))
    return load_script(REPO / "bench" / "prompt_examples.py")


def test_six_examples_extend_the_default_prompt_before_the_question() -> None:
    m = _module()
    z = Passage(id="z", doc_id="d", title="Broncos", text="The Broncos won Super Bowl 50.")
    default = PromptFormat().passage("Who won?", z)
    six = m.SixExamples().passage("Who won?", z)
    assert len(six) == len(default) + 6
    assert six[: len(default) - 1] == default[:-1] and six[-1] == default[-1]
    added = six[len(default) - 1 : -1]
    assert [x["role"] for x in added] == ["user", "assistant"] * 3
    assert all("Osterhaven Harbor Festival" in x["content"] for x in added[::2])
    assert [x["content"] for x in added[1::2]] == ["six", "the city's merchant guild", "The mayor"]
    no_shots = PromptFormat(few_shot=False)
    assert m.SixExamples(few_shot=False).passage("Who won?", z) == no_shots.passage("Who won?", z)


def test_the_swapped_config_keeps_every_field_and_builds_six_examples() -> None:
    m = _module()
    base = GeneratorConfig(model="qwen2.5-0.5b", dtype="bfloat16")
    swapped = m.SixExamplesConfig(**dataclasses.asdict(base))
    assert dataclasses.asdict(swapped) == dataclasses.asdict(base)
    assert isinstance(swapped.prompt_format, m.SixExamples)
