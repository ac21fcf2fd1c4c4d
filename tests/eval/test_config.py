"""EvalConfig: what one evaluation measures, checked on construction."""

from __future__ import annotations

import pytest

from mixrag.answer import DEFAULT_K
from mixrag.errors import MixragError
from mixrag.eval import runner
from mixrag.eval.config import EvalConfig, run_key


def test_config_rejects_bad_values() -> None:
    with pytest.raises(MixragError, match="'rag-seq'"):
        EvalConfig(modes=("rag-seq",))
    with pytest.raises(MixragError, match="'sparse'"):
        EvalConfig(retrieval=("sparse",))
    with pytest.raises(MixragError, match="ks"):
        EvalConfig(ks=(0,))
    assert EvalConfig(modes=("rag-token", "closed-book"), ks=(5, 1)).runs == [
        ("rag-token", 1),
        ("rag-token", 5),
        ("closed-book", 0),
    ]
    assert run_key("closed-book", 0) == "closed-book@0"


def test_without_ks_each_mode_runs_at_its_default_k() -> None:
    default = EvalConfig(modes=("concat", "rag-sequence", "closed-book"))
    assert default.runs == [
        ("concat", DEFAULT_K["concat"]),
        ("rag-sequence", DEFAULT_K["rag-sequence"]),
        ("closed-book", 0),
    ]
    assert default.depth == max(DEFAULT_K["concat"], DEFAULT_K["rag-sequence"])
    assert EvalConfig(modes=("closed-book",)).depth == DEFAULT_K["closed-book"]
    assert EvalConfig(modes=("concat",), ks=(2, 7)).depth == 7


def test_the_runner_still_exports_the_config() -> None:
    assert runner.EvalConfig is EvalConfig and runner.run_key is run_key
