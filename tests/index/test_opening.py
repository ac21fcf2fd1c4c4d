"""open_or_create: what ``mixrag index`` opens, only the given configuration fields set."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixrag.errors import IndexMismatchError
from mixrag.index.config import IndexConfig
from mixrag.index.opening import index_exists, open_or_create


def test_a_new_index_takes_the_given_fields_over_the_defaults(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    with open_or_create(target, chunking={"words": 50}, vectors={"kind": "hnsw"}) as idx:
        assert index_exists(target)
        defaults = IndexConfig()
        assert idx.config.chunking.words == 50
        assert idx.config.chunking.overlap == defaults.chunking.overlap
        assert idx.config.vectors.kind == "hnsw"
        assert idx.config.encoder == defaults.encoder


def test_an_existing_index_keeps_the_fields_not_given(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    open_or_create(target, chunking={"words": 50, "sentences": True}).close()
    # nothing given: its own chunking, not the defaults (which would be refused)
    with open_or_create(target) as idx:
        assert idx.config.chunking.words == 50 and idx.config.chunking.sentences
    # the same value given again is no difference
    with open_or_create(target, chunking={"words": 50}) as idx:
        assert idx.config.chunking.sentences


def test_a_different_chunking_or_encoder_is_refused_naming_it(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    open_or_create(target, chunking={"words": 50}).close()
    with pytest.raises(IndexMismatchError, match=r"chunking\.words: index has 50, asked for 80"):
        open_or_create(target, chunking={"words": 80})
    with pytest.raises(IndexMismatchError, match=r"encoder\.model: index has 'all-MiniLM-L6-v2'"):
        open_or_create(target, encoder={"model": "another-encoder"})


def test_vector_index_settings_are_adopted(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    open_or_create(target, chunking={"words": 50}).close()
    with open_or_create(target, vectors={"kind": "ivfpq", "ivf_nprobe": 4}) as idx:
        assert idx.config.vectors.kind == "ivfpq" and idx.config.vectors.ivf_nprobe == 4
        assert idx.config.chunking.words == 50
