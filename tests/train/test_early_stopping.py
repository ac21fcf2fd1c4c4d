"""Early stopping of q(x): the best dev figure's weights come back after patience runs out."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mixrag.errors import MixragError
from mixrag.train.early_stopping import RetrieverEarlyStopping, stop_metric


class _Query:
    """Stands in for QueryEncoder: early stopping reads and writes ``model``'s weights."""

    def __init__(self) -> None:
        self.model = torch.nn.Linear(2, 1)

    def set(self, value: float) -> None:
        with torch.no_grad():
            self.model.weight.fill_(value)

    @property
    def value(self) -> float:
        return float(self.model.weight[0, 0].detach())


def test_patience_runs_out_and_q_goes_back_to_its_best(tmp_path: Path) -> None:
    q = _Query()
    early = RetrieverEarlyStopping(patience=2, k=2)
    q.set(0.0)
    early.start({"recall@2": 0.5, "recall@5": 0.9}, step=0, query=q)  # type: ignore[arg-type]
    assert early.best == {"metric": "recall@2", "value": 0.5, "step": 0, "bad": 0}
    for step, recall in ((1, 0.75), (2, 0.75)):
        q.set(float(step))
        early.observe({"recall@2": recall}, step, q)  # type: ignore[arg-type]
    assert early.best == {"metric": "recall@2", "value": 0.75, "step": 1, "bad": 1}
    assert early.stopped_at is None and q.value == 2.0

    # what a checkpoint keeps comes back the same
    early.save_weights(tmp_path)
    again = RetrieverEarlyStopping.resumed(
        2, 2, {"retriever_early_stop": early.to_manifest()}, tmp_path
    )
    assert (again.best, again.stopped_at) == (early.best, None)
    assert again.best_weights is not None
    torch.testing.assert_close(again.best_weights["weight"], torch.full((1, 2), 1.0))

    q.set(3.0)
    again.observe({"recall@2": 0.5}, 3, q)  # type: ignore[arg-type]
    assert again.stopped_at == 3 and q.value == 1.0  # step 1's weights
    assert again.best is not None and again.best["bad"] == 2
    again.finish(4, q)  # type: ignore[arg-type]
    assert again.stopped_at == 3  # stopped already: nothing changes


def test_a_run_that_ends_first_keeps_the_best_weights() -> None:
    q = _Query()
    early = RetrieverEarlyStopping(patience=5, k=2)
    q.set(0.0)
    early.start({"recall@2": 0.5}, 0, q)  # type: ignore[arg-type]
    q.set(1.0)
    early.observe({"recall@2": 0.25}, 1, q)  # type: ignore[arg-type]
    early.finish(1, q)  # type: ignore[arg-type]
    assert early.stopped_at == 1 and q.value == 0.0  # the untrained q(x) was best
    early.start({"recall@2": 0.9}, 1, q)  # type: ignore[arg-type]  # once per run
    assert early.best is not None and early.best["value"] == 0.5


def test_stop_metric_falls_back_to_answer_at_k_and_names_what_was_measured() -> None:
    assert stop_metric({"recall@3": 0.1, "answer@3": 0.2}, 3) == "recall@3"
    assert stop_metric({"answer@3": 0.2, "em": 10.0}, 3) == "answer@3"
    with pytest.raises(MixragError, match=r"recall@3 or answer@3.*measured only em"):
        stop_metric({"em": 10.0}, 3)
    old = RetrieverEarlyStopping(2, 3, best={"value": 0.1, "step": 0, "bad": 0})
    assert old.metric == "recall@3"  # runs saved before the metric was recorded
