"""The model-free pieces of the training loop."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from mixrag.eval.datasets import Question
from mixrag.train import TrainConfig
from mixrag.train.loop import (
    accumulate,
    dev_due,
    epoch_batches,
    example_order,
    optimizer_step,
    progress_of,
    schedule,
    step_record,
    total_steps,
    warmup_then_decay,
)


def test_total_steps_epochs_max_steps_and_a_frozen_generator() -> None:
    cfg = TrainConfig(batch_size=2, grad_accum=2, epochs=3)
    assert total_steps(9, cfg) == 3 * 3  # ceil(9 / 4) steps an epoch
    assert total_steps(9, TrainConfig(batch_size=2, grad_accum=2, epochs=3, max_steps=4)) == 4
    frozen = TrainConfig(freeze="generator,prior", retriever_steps=2, epochs=3)
    assert total_steps(100, frozen) == 2  # nothing trains after q(x) stops
    prior_learns = TrainConfig(freeze="generator", retriever_steps=2, epochs=3)
    assert total_steps(100, prior_learns) == 3 * 13  # w and tau go on learning


def test_each_epoch_has_its_own_seeded_order() -> None:
    cfg = TrainConfig(batch_size=3, seed=7)
    first, again, second = (epoch_batches(10, cfg, e) for e in (0, 0, 1))
    assert first == again and first != second
    assert [len(b) for b in first] == [3, 3, 3, 1]
    assert sorted(i for b in first for i in b) == list(range(10))
    assert [i for b in first for i in b] == example_order(10, 7, 0)


def test_warmup_then_linear_decay_to_zero() -> None:
    f = warmup_then_decay(total=10, warmup=3)
    assert [f(s) for s in range(3)] == pytest.approx([0.25, 0.5, 0.75])
    assert f(3) == pytest.approx(1.0) and f(10) == 0.0 and f(11) == 0.0
    assert warmup_then_decay(total=1, warmup=5)(0) == pytest.approx(1.0)  # warm-up cut


def test_q_group_decays_to_zero_at_retriever_steps() -> None:
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.SGD([{"params": [params[0]]}, {"params": [params[1]]}], lr=1.0)
    cfg = TrainConfig(warmup_steps=0, retriever_steps=2)
    sched = schedule(opt, 4, cfg, query_group=True)
    lrs = []
    for _ in range(4):
        lrs += [g["lr"] for g in opt.param_groups]
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1.0, 1.0, 0.5, 0.75, 0.0, 0.5, 0.0, 0.25])  # (q, gen) a step
    resumed = schedule(opt, 4, cfg, query_group=True, state=sched.state_dict())
    assert resumed.last_epoch == 4


def test_a_resumed_schedule_with_another_total_sets_its_own_rate() -> None:
    """A run with a budget of 1 step (rate 0 after it), resumed with a budget of 2: the
    second step has the 2-step schedule's rate, not the saved optimizer's 0."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    cfg = TrainConfig(warmup_steps=0)
    short = schedule(opt, 1, cfg, query_group=False)
    opt.step()
    short.step()
    assert opt.param_groups[0]["lr"] == 0.0
    saved_opt, saved_sched = opt.state_dict(), short.state_dict()
    again = torch.optim.SGD([p], lr=1.0)
    again.load_state_dict(saved_opt)
    schedule(again, 2, cfg, query_group=False, state=saved_sched)
    assert again.param_groups[0]["lr"] == pytest.approx(1 / 2)


def _questions(n: int) -> list[Question]:
    return [Question(id=str(i), question=f"q{i}", answers=("a",)) for i in range(n)]


def test_accumulated_micro_batches_give_the_gradient_of_the_mean() -> None:
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    targets = {f"q{i}": torch.tensor([float(i), 1.0]) for i in range(5)}

    def losses(batch: Sequence[Question]) -> tuple[torch.Tensor, dict[str, float]]:
        x = torch.stack([targets[q.question] for q in batch])  # [B, 2]
        return (x @ w) ** 2, {"retrieve": 0.5, "forward": 1.0}

    qs = _questions(5)
    per_question, times = accumulate(losses, [qs[:2], qs[2:4], qs[4:]])
    assert w.grad is not None
    accumulated = w.grad.clone()
    w.grad = None
    whole, _ = losses(qs)
    whole.mean().backward()
    torch.testing.assert_close(accumulated, w.grad)
    assert per_question == pytest.approx(whole.tolist())
    assert times["retrieve"] == 1.5 and times["forward"] == 3.0 and times["backward"] >= 0
    expected = float(w.grad.norm())
    opt = torch.optim.SGD([w], lr=0.1)
    sched = schedule(opt, 10, TrainConfig(warmup_steps=0), query_group=False)
    norm = optimizer_step(opt, sched, max_grad_norm=1e-3)
    assert norm == pytest.approx(expected)  # the norm before clipping
    assert w.grad is None  # cleared for the next step


def test_step_record_progress_and_when_dev_is_evaluated() -> None:
    history = [
        step_record(s, 0, [1.0, 3.0], 2.0, 0.5, [1e-4], True, {"forward": 1.0}) for s in (1, 2)
    ]
    assert history[1]["loss"] == 2.0 and history[1]["examples"] == 2
    assert history[1]["examples_per_s"] == 1.0 and history[1]["forward_s"] == 1.0
    history[1]["dev"] = {"recall@5": 0.5}
    p = progress_of(history, total=5, config=TrainConfig(batch_size=2, grad_accum=1))
    assert (p.step, p.total_steps, p.loss, p.examples_per_s) == (2, 5, 2.0, 1.0)
    assert p.eta_s == pytest.approx(3 * 2 / 1.0) and p.dev == {"recall@5": 0.5}
    assert dev_due(TrainConfig(eval_every=2), 4, epoch_done=False)
    assert not dev_due(TrainConfig(eval_every=2), 3, epoch_done=True)
    assert dev_due(TrainConfig(), 3, epoch_done=True)
    assert not dev_due(TrainConfig(), 3, epoch_done=False)
