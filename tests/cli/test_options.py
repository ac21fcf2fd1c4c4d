"""The shared option checks: what --index / --store and --device / --dtype become."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixrag.cli.options import generator_options, target
from mixrag.errors import MixragError


def test_target_is_the_folder_or_the_store() -> None:
    assert target(Path("idx"), None) == Path("idx")
    assert target(None, "postgresql://h/db#s") == "postgresql://h/db#s"


@pytest.mark.parametrize(
    ("index", "store", "message"),
    [
        (Path("idx"), "postgresql://h/db", "not both"),
        (None, None, "give --index"),
        (None, "mysql://h/db", "must be a postgresql:// URL"),
    ],
)
def test_target_mistakes(index: Path | None, store: str | None, message: str) -> None:
    with pytest.raises(MixragError, match=message):
        target(index, store)


def test_generator_options_are_checked_now() -> None:
    assert generator_options("cpu", "float32") == {"device": "cpu", "dtype": "float32"}
    assert generator_options("cpu", "bfloat16", 0)["passage_cache_mb"] == 0
    with pytest.raises(MixragError, match="dtype 'int8' is not one"):
        generator_options("cpu", "int8")


def test_min_relevance_is_a_number_or_off() -> None:
    from mixrag.cli.options import relevance_threshold

    assert relevance_threshold("0.42") == 0.42 and relevance_threshold("-1") == -1.0
    assert relevance_threshold("off") is None and relevance_threshold(" OFF ") is None
    for bad in ("high", "nan", "inf", ""):
        with pytest.raises(MixragError, match="--min-relevance must be a number or 'off'"):
            relevance_threshold(bad)
