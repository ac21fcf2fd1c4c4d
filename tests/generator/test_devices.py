"""--device / --dtype: resolved before loading, absent devices named in one line."""

from __future__ import annotations

import pytest
import torch

from mixrag.errors import ModelLoadError
from mixrag.generator import GeneratorConfig
from mixrag.generator import models as m
from mixrag.generator.scoring import split_by_length


def test_auto_device_is_the_first_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert m.resolve_device("auto") in ("cpu", "mps")
    assert m.resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert m.resolve_device("auto") == "cuda"


def test_an_absent_device_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match=r"'cuda' is not available: torch .* sees no CUDA"):
        m.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ModelLoadError, match="'cuda:3' is not available: 1 CUDA GPU"):
        m.resolve_device("cuda:3")
    with pytest.raises(ModelLoadError, match="'tpu' is not one of"):
        m.resolve_device("tpu")


def test_auto_dtype_is_bfloat16_only_where_it_is_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    assert m.resolve_dtype("float16", "cpu") == "float16"  # asked for: kept
    monkeypatch.setattr(m, "cpu_has_amx", lambda: True)
    assert m.resolve_dtype("auto", "cpu") == "bfloat16"
    monkeypatch.setattr(m, "cpu_has_amx", lambda: False)
    assert m.resolve_dtype("auto", "cpu") == "float32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert m.resolve_dtype("auto", "cuda") == "bfloat16"


def test_config_checks_the_new_fields() -> None:
    assert GeneratorConfig(device="auto", dtype="auto").passage_cache_mb > 0
    with pytest.raises(ValueError, match="device 'gpu' is not one of"):
        GeneratorConfig(device="gpu")
    with pytest.raises(ValueError, match="passage_cache_mb must be a non-negative"):
        GeneratorConfig(passage_cache_mb=-1)
    with pytest.raises(ValueError, match="passage_cache_dtype 'int8'"):
        GeneratorConfig(passage_cache_dtype="int8")
    cfg = GeneratorConfig(passage_cache_mb=0, passage_cache_dtype="bfloat16")
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg


def test_split_by_length_minimises_padding_plus_passes() -> None:
    # one long group, one short: two passes beat padding every short row to 10
    assert split_by_length([10] * 8 + [2] * 40, 64, 64) == [(0, 8), (8, 48)]
    # similar lengths: one pass
    assert split_by_length([5, 5, 4, 4], 64, 64) == [(0, 4)]
    # the row limit holds
    assert all(hi - lo <= 2 for lo, hi in split_by_length([3] * 5, 64, 2))
    assert split_by_length([], 64, 8) == []
