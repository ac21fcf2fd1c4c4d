"""Early stopping of q(x) on a dev figure (``TrainConfig.retriever_patience``).

Every dev evaluation compares the current q(x)'s dev recall@K (or, for dev questions
that name no gold passage, DPR's answer-in-top-K) with the best so far, the untrained
encoder's first. The best weights are kept; after ``patience`` evaluations without a
strictly higher value, or when the run ends first, q(x) goes back to them and stays
fixed while the generator trains on. The state (best value, its step, evaluations
since, the step q(x) stopped, the best weights) travels in the checkpoint, so a
resumed run makes the same choice.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from mixrag.errors import MixragError
from mixrag.train.models import QueryEncoder

log = logging.getLogger(__name__)

BEST_QUERY_FILE = "query_encoder_best.pt"  # q(x)'s best weights, in the checkpoint folder


def stop_metric(dev: dict[str, float], k: int) -> str:
    """What early stopping compares: dev recall@k of the gold passages, or, for a dev
    set of plain (question, answers) pairs with no gold passage, DPR's answer-in-top-k
    (a retrieved passage holds an answer string)."""
    if dev.get(f"recall@{k}") is not None:
        return f"recall@{k}"
    if dev.get(f"answer@{k}") is not None:
        log.info(
            "early stopping of q(x) on dev answer@%d (an answer in the top %d): the dev "
            "questions name no gold passage, so recall@%d cannot be measured",
            k,
            k,
            k,
        )
        return f"answer@{k}"
    raise MixragError(
        f"early stopping of q(x) needs dev recall@{k} or answer@{k}; the dev "
        f"evaluation measured only {', '.join(sorted(dev)) or 'nothing'}"
    )


class RetrieverEarlyStopping:
    """The early-stopping state of q(x) (module docstring).

    ``best``: {"metric", "value", "step", "bad"} once started (``value`` the best dev
    figure, ``step`` where it was measured, ``bad`` evaluations since), else None.
    ``stopped_at``: the step at which q(x) went back to its best weights and stopped.
    """

    def __init__(
        self,
        patience: int | None,
        k: int,
        best: dict[str, Any] | None = None,
        stopped_at: int | None = None,
        best_weights: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.patience = patience
        self.k = k
        self.best = best
        self.stopped_at = stopped_at
        self.best_weights = best_weights

    @classmethod
    def resumed(
        cls, patience: int | None, k: int, manifest: dict[str, Any], folder: Path
    ) -> RetrieverEarlyStopping:
        """The state a checkpoint (its manifest and folder) saved."""
        early = manifest.get("retriever_early_stop") or {}
        weights = None
        if (folder / BEST_QUERY_FILE).exists():
            weights = torch.load(folder / BEST_QUERY_FILE, weights_only=True)
        return cls(patience, k, early.get("best"), early.get("stopped_at"), weights)

    def to_manifest(self) -> dict[str, Any]:
        return {"best": self.best, "stopped_at": self.stopped_at}

    def save_weights(self, folder: Path) -> None:
        """Put the best weights so far (to go back to) in a checkpoint folder."""
        if self.best_weights is not None:
            torch.save(self.best_weights, folder / BEST_QUERY_FILE)

    @property
    def metric(self) -> str:
        # runs saved before "metric" was recorded compared recall@k
        return str((self.best or {}).get("metric", f"recall@{self.k}"))

    def start(self, dev_start: dict[str, float], step: int, query: QueryEncoder) -> None:
        """The untrained q(x)'s evaluation: the first value to beat (once per run)."""
        if self.best is None:
            metric = stop_metric(dev_start, self.k)
            self.best = {"metric": metric, "value": None, "step": 0, "bad": 0}
            self.observe(dev_start, step, query)

    def observe(self, dev: dict[str, float], step: int, query: QueryEncoder) -> None:
        """One dev evaluation of q(x): keep its weights if it is the best so far; after
        ``patience`` evaluations without a higher value, go back to the best and stop."""
        best = self.best
        assert best is not None, "start() first"
        value = dev[self.metric]
        if best["value"] is None or value > best["value"]:
            best.update(value=value, step=step, bad=0)
            self.best_weights = {
                name: t.detach().clone() for name, t in query.model.state_dict().items()
            }
            return
        best["bad"] += 1
        if best["bad"] >= (self.patience or 0):
            assert self.best_weights is not None
            query.model.load_state_dict(self.best_weights)
            self.stopped_at = step
            self.best_weights = None
            log.info(
                "q(x): dev %s %.4f at step %d not beaten in %d evaluations; "
                "back to those weights, fixed from step %d on",
                self.metric,
                best["value"],
                best["step"],
                best["bad"],
                step,
            )

    def finish(self, step: int, query: QueryEncoder) -> None:
        """The run is over with q(x) still training: back to the best weights of all the
        evaluations, as if patience had run out now."""
        if self.stopped_at is not None:
            return
        if self.best_weights is not None:
            query.model.load_state_dict(self.best_weights)
        self.stopped_at = step
        self.best_weights = None
        best = self.best or {}
        log.info(
            "end of run: q(x) back to its best dev %s (%s, step %s)",
            self.metric,
            best.get("value"),
            best.get("step"),
        )
