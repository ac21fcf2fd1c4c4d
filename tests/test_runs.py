"""What --model / --device / --dtype become in the library: checked options, a generator."""

from __future__ import annotations

import pytest

from mixrag.errors import MixragError
from mixrag.generator.config import DEFAULT_MODEL, GeneratorConfig
from mixrag.runs import generator_options, new_generator


def test_generator_options_are_the_fields_given() -> None:
    assert generator_options() == {"device": "cpu", "dtype": "float32"}
    assert generator_options("cpu", "bfloat16", 0) == {
        "device": "cpu",
        "dtype": "bfloat16",
        "passage_cache_mb": 0,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tpu", "float32"), "device 'tpu' is not one of"),
        (("cpu", "int8"), "dtype 'int8' is not one of"),
        (("cpu", "float32", -1), "passage_cache_mb must be a non-negative integer .* got -1"),
    ],
)
def test_generator_options_name_a_bad_value(args: tuple, message: str) -> None:
    with pytest.raises(MixragError, match=message):
        generator_options(*args)


def test_new_generator_is_configured_not_loaded() -> None:
    default = new_generator(None)
    assert default.config == GeneratorConfig() and default.config.model == DEFAULT_MODEL
    small = new_generator("smollm2-135m", generator_options("cpu", "bfloat16", 0))
    assert small.config.model == "smollm2-135m" and small.config.dtype == "bfloat16"
    assert small.passage_cache is None  # 0 MiB: off
    assert small._model is None  # loads on first use
