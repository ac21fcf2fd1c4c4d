"""GeneratorConfig: validation and the JSON round trip."""

from __future__ import annotations

import json

import pytest

from mixrag.generator import GeneratorConfig, PromptFormat


def test_json_round_trip() -> None:
    cfg = GeneratorConfig(model="smollm2-135m", max_new_tokens=7, few_shot=False)
    back = GeneratorConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg


def test_unknown_key_is_named() -> None:
    with pytest.raises(ValueError, match="max_new_token"):
        GeneratorConfig.from_dict({"max_new_token": 3})


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("dtype", "float8", "dtype 'float8'"),
        ("prompt_style", "chatty", "prompt_style 'chatty'"),
        ("max_batch_tokens", 0, "max_batch_tokens"),
        ("model", "", "model"),
    ],
)
def test_bad_values_are_named(field: str, value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GeneratorConfig(**{field: value})  # type: ignore[arg-type]


def test_prompt_format_follows_config() -> None:
    cfg = GeneratorConfig(prompt_style="plain", few_shot=False)
    assert cfg.prompt_format == PromptFormat(style="plain", few_shot=False)
