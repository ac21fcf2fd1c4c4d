"""The pieces of the training loop that know nothing of the models.

How many optimiser steps a run has, the order an epoch reads its examples in, the
learning-rate schedule, one optimiser step over accumulated micro-batches, the
history record it leaves, when the dev set is evaluated, and what a progress display
is told. ``Trainer.train`` (:mod:`mixrag.train.trainer`) puts them together.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mixrag.eval.datasets import Question
from mixrag.train.config import TrainConfig

#: [B] -log p_RAG(y_b|x_b) of a micro-batch (with gradient) and where its time went
QuestionLosses = Callable[[Sequence[Question]], tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class TrainProgress:
    """What a progress display needs after each optimiser step."""

    step: int
    total_steps: int
    epoch: int
    loss: float
    examples_per_s: float
    eta_s: float | None
    dev: dict[str, float] | None = None


ProgressFn = Callable[[TrainProgress], None]


def total_steps(n_examples: int, config: TrainConfig) -> int:
    """Optimiser steps of the run: the epochs, cut by ``max_steps`` and, with the
    generator and the prior frozen, by ``retriever_steps`` (nothing trains after q(x) stops)."""
    per_step = config.batch_size * config.grad_accum
    total = config.epochs * math.ceil(n_examples / per_step)
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    if not (config.trains_generator or config.trains_prior) and config.retriever_steps is not None:
        total = min(total, config.retriever_steps)
    return total


def example_order(n: int, seed: int, epoch: int) -> list[int]:
    """The order in which epoch ``epoch`` of a run seeded ``seed`` reads its n examples."""
    idx = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(idx)
    return idx


def epoch_batches(n: int, config: TrainConfig, epoch: int) -> list[list[int]]:
    """Epoch ``epoch``'s micro-batches of example indices, ``batch_size`` each."""
    order = example_order(n, config.seed, epoch)
    return [order[i : i + config.batch_size] for i in range(0, n, config.batch_size)]


def warmup_then_decay(total: int, warmup: int) -> Callable[[int], float]:
    """The learning-rate factor at step s: (s+1)/(w+1) for s < w, then linear to 0 at
    ``total`` (w = ``warmup``, at most total - 1)."""
    warm = min(warmup, max(0, total - 1))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        return max(0.0, (total - step) / max(1, total - warm))

    return factor


def schedule(
    optimizer: torch.optim.Optimizer,
    total: int,
    config: TrainConfig,
    query_group: bool,
    state: dict[str, Any] | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then linear decay to 0 at ``total``; q(x)'s group (group 0 when
    ``query_group``) decays to 0 at ``retriever_steps`` instead. ``state``: a
    checkpoint's scheduler state, to continue from."""
    lengths = [total] * len(optimizer.param_groups)
    if query_group and config.retriever_steps is not None:
        lengths[0] = min(total, config.retriever_steps)
    factors = [warmup_then_decay(n, config.warmup_steps) for n in lengths]
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
    if state:
        sched.load_state_dict(state)
        # the optimizer's saved rates follow the saved run's schedule; a resume with
        # another budget (max_steps, epochs) has another total: its rates from here on
        for group, base, factor in zip(
            optimizer.param_groups, sched.base_lrs, factors, strict=True
        ):
            group["lr"] = base * factor(sched.last_epoch)
    return sched


def accumulate(
    question_losses: QuestionLosses, micro_batches: Sequence[Sequence[Question]]
) -> tuple[list[float], dict[str, float]]:
    """Forward and backward of each micro-batch, accumulating the gradient of the mean
    loss over all their questions. Returns each question's loss and where the time
    went (retrieve, forward, backward; seconds)."""
    n = sum(len(b) for b in micro_batches)
    losses: list[float] = []
    times = {"retrieve": 0.0, "forward": 0.0, "backward": 0.0}
    for batch in micro_batches:
        per_question, t = question_losses(batch)
        tb = time.perf_counter()
        (per_question.sum() / n).backward()
        times["backward"] += time.perf_counter() - tb
        times["retrieve"] += t["retrieve"]
        times["forward"] += t["forward"]
        losses += per_question.detach().tolist()
    return losses, times


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    max_grad_norm: float,
) -> float:
    """Clip the global gradient norm, step, advance the schedule, clear the gradients;
    returns the norm before clipping."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


def step_record(
    step: int,
    epoch: int,
    losses: Sequence[float],
    seconds: float,
    grad_norm: float,
    lrs: Sequence[float],
    query_trained: bool,
    times: dict[str, float],
) -> dict[str, Any]:
    """One line of ``history.jsonl``."""
    return {
        "step": step,
        "epoch": epoch,
        "loss": sum(losses) / len(losses),
        # one per question: the mean is dominated by the few whose answer is in none of
        # the K passages, the median is not
        "losses": list(losses),
        "examples": len(losses),
        "seconds": seconds,
        "examples_per_s": len(losses) / seconds,
        "grad_norm": grad_norm,
        "lr": list(lrs),
        "query_trained": query_trained,
        **{f"{k}_s": v for k, v in times.items()},
    }


def dev_due(config: TrainConfig, step: int, epoch_done: bool) -> bool:
    """Whether the dev set is evaluated after this step: every ``eval_every`` steps, or
    at the end of each epoch when that is None."""
    if config.eval_every is not None:
        return step % config.eval_every == 0
    return epoch_done


def statistics_rate(history: Sequence[dict[str, Any]], window: int = 20) -> float:
    """Examples per second over the last ``window`` steps."""
    recent = history[-window:]
    seconds = sum(h["seconds"] for h in recent)
    return sum(h["examples"] for h in recent) / seconds if seconds > 0 else 0.0


def progress_of(
    history: Sequence[dict[str, Any]], total: int, config: TrainConfig
) -> TrainProgress:
    """The progress after the last step of ``history``, with its ETA at the recent rate."""
    last = history[-1]
    rate = statistics_rate(history)
    per_step = config.batch_size * config.grad_accum
    left = (total - last["step"]) * per_step / rate if rate else None
    return TrainProgress(
        last["step"], total, last["epoch"], last["loss"], rate, left, last.get("dev")
    )
