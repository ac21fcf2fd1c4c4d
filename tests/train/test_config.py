"""TrainConfig: errors that name the value, and a JSON round trip."""

from __future__ import annotations

import pytest

from mixrag.errors import MixragError
from mixrag.train import TrainConfig


def test_runs_saved_before_the_bm25_part_read_back_with_the_papers_score() -> None:
    old = TrainConfig().to_dict()
    del old["bm25_weight"], old["lr_prior"]
    back = TrainConfig.from_dict(old)
    assert (back.bm25_weight, back.lr_prior) == (0.0, 0.0)
    with pytest.raises(MixragError, match="lr_prior must be >= 0, got -1"):
        TrainConfig(lr_prior=-1)


def test_freeze_is_a_set_of_parts() -> None:
    prior_only = TrainConfig(freeze="retriever, generator")
    assert prior_only.frozen == {"retriever", "generator"}
    assert (prior_only.trains_retriever, prior_only.trains_generator) == (False, False)
    assert prior_only.trains_prior
    assert (
        not TrainConfig(freeze="prior").trains_prior
        and TrainConfig(freeze="prior").trains_generator
    )
    assert not TrainConfig(lr_prior=0.0).trains_prior
    assert TrainConfig(freeze="none").frozen == frozenset()
    with pytest.raises(MixragError, match="leaves nothing to train"):
        TrainConfig(freeze="prior,generator,retriever")
    with pytest.raises(MixragError, match="'retriever,encoder'"):
        TrainConfig(freeze="retriever,encoder")


def test_config_errors_name_the_value() -> None:
    with pytest.raises(MixragError, match="'both'"):
        TrainConfig(freeze="both")
    with pytest.raises(MixragError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(MixragError, match="'float8'"):
        TrainConfig(autocast="float8")
    cfg = TrainConfig(k=2, batch_size=2, grad_accum=1, lr=2e-3, warmup_steps=0)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(MixragError, match="unknown training settings: nope"):
        TrainConfig.from_dict({"nope": 1})
