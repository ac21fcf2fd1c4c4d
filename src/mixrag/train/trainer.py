"""Joint training of q(x) and p_phi by the negative marginal log-likelihood (§2.4).

One training step on a batch of (x, y) pairs, z latent:

1. q(x) from the trainable query encoder (with gradient);
2. the top K passages by maximum inner product with the *current* q(x) (re-retrieved
   every step, so the trained encoder can reach passages it did not rank before), their
   stored vectors d(z_j) (fixed: the index is not re-encoded), and the scores
   s_j = d(z_j)ᵀq(x) (:func:`mixrag.retriever.prior.inner_products`, the retriever's
   own): the gradient reaches q(x) through these K inner products;
3. log p_eta(z_j|x) = log softmax(s / tau), s_j = d(z_j)ᵀq(x) + w · bm25n(x, z_j), with
   w and tau learned too (:mod:`mixrag.train.prior`);
4. log p_phi(y_i|x,z_j,y_<i) for the K passage prompts, [B, K, T] with gradient
   (``TransformersGenerator.logprobs`` with ``track_grad``);
5. loss = -log p_RAG(y|x) of the chosen mode (:mod:`mixrag.mixture.loss`), averaged.

AdamW on the trainable parameters of both sides, gradient accumulation, global-norm
clipping, linear warm-up and decay. Every ``checkpoint_every`` steps the run folder
gets a checkpoint (atomically replaced) with the optimizer state, so ``resume``
continues with the same step count, data order and learning-rate schedule.

The rest of the run lives beside this module: :mod:`~mixrag.train.setup` (the run
folder, models, optimizer), :mod:`~mixrag.train.loop` (steps, schedule, history
records), :mod:`~mixrag.train.early_stopping` (q(x) on the dev set),
:mod:`~mixrag.train.dev` (the dev figures), :mod:`~mixrag.train.plots` (``loss.png``)
and :mod:`~mixrag.train.rng` (randomness without touching the process-wide generators).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mixrag.atomic import atomic_write
from mixrag.errors import MixragError
from mixrag.eval.datasets import Dataset, Question
from mixrag.generator.base import TokenLogprobs
from mixrag.mixture.loss import rag_sequence_nll, rag_token_nll
from mixrag.rag import passage_prompts
from mixrag.retriever.prior import inner_products, pad_passages
from mixrag.train import loop
from mixrag.train.checkpoint import checkpoint_path, index_identity, write_checkpoint
from mixrag.train.config import TrainConfig
from mixrag.train.dev import evaluate_dev, training_retriever
from mixrag.train.early_stopping import RetrieverEarlyStopping
from mixrag.train.loop import ProgressFn, TrainProgress
from mixrag.train.plots import plot_loss
from mixrag.train.prior import LearnedPrior
from mixrag.train.rng import RunRNG, isolated
from mixrag.train.setup import (
    TRAINER_STATE,
    open_run,
    optimizer_for,
    trainable_generator,
    trainable_query_encoder,
    warn_if_slow_autocast,
)

if TYPE_CHECKING:
    from mixrag.generator.hf import TransformersGenerator
    from mixrag.index.opening import AnyIndex

log = logging.getLogger(__name__)

__all__ = ["ProgressFn", "TrainProgress", "Trainer", "checkpoint_path"]


@dataclass
class _Batch:
    log_prior: torch.Tensor  # [B, K]
    prompts: list[list[str]]  # [B][K]
    answers: list[list[int]]  # [B][T_b]


class Trainer:
    """Trains the query encoder and/or the generator of a RAG over a fixed index.

    ``generator`` is the base generator (a loaded ``TransformersGenerator`` whose
    weights become the trained model: pass a fresh one, its model is modified), or
    None to load ``model``. With ``resume`` the run folder's checkpoint is loaded
    (its settings win over ``config``, except the budget: epochs, max_steps,
    max_minutes).

    Randomness (adapter initialisation, dropout) comes from ``config.seed`` through
    :mod:`mixrag.train.rng`: the same seed trains the same models, and the caller's
    process-wide random state is left as it was.
    """

    def __init__(
        self,
        index: AnyIndex,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        model: str | None = None,
        generator: TransformersGenerator | None = None,
        resume: bool = False,
    ) -> None:
        self.index = index
        self.run_dir = Path(run_dir)
        config, resumed = open_run(self.run_dir, index, config, resume)
        self.config = config
        ckpt = resumed.checkpoint if resumed is not None else None
        self.step = resumed.step if resumed else 0
        self.epoch = resumed.epoch if resumed else 0
        self.position = resumed.position if resumed else 0  # micro-batches done this epoch
        self.elapsed_s = resumed.elapsed_s if resumed else 0.0  # over all resumes
        self.history: list[dict[str, Any]] = resumed.history if resumed else []
        # the dev evaluation of the untrained models, before step 1 (the curve's baseline)
        self.dev_start: dict[str, float] | None = resumed.dev_start if resumed else None
        patience = config.retriever_patience
        self.early = (
            RetrieverEarlyStopping.resumed(patience, config.k, ckpt.manifest, ckpt.path)
            if ckpt is not None
            else RetrieverEarlyStopping(patience, config.k)
        )
        self.rng = RunRNG(config.seed)  # dropout's stream; the data order has its own
        with isolated():  # loading draws initial weights from the global generator
            self.model, self.generator, self.base_model_name = trainable_generator(
                config, ckpt, model, generator
            )
            self.query = trainable_query_encoder(index, config, ckpt)
        start = ckpt.prior if ckpt is not None else config.prior
        self.prior = LearnedPrior(start["bm25_weight"], start["tau"], config.trains_prior)
        warn_if_slow_autocast(config)
        self.optimizer = optimizer_for(self.query, self.model, config, self.prior)
        self.total_steps = 0
        self._scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self._state = resumed.state if resumed else None  # the checkpoint's scheduler
        if resumed is not None:
            self.optimizer.load_state_dict(resumed.state["optimizer"])
            self.rng.set_state(resumed.state["torch_rng"])

    @property
    def retriever_best(self) -> dict[str, Any] | None:
        """q(x)'s best dev evaluation under ``retriever_patience``: metric, value, step,
        evaluations since (:class:`~mixrag.train.early_stopping.RetrieverEarlyStopping`)."""
        return self.early.best

    @property
    def retriever_stopped_at(self) -> int | None:
        """The step at which q(x) went back to its best weights and stopped training."""
        return self.early.stopped_at

    # ------------------------------------------------------------------ one step

    def answer_ids(self, text: str) -> list[int]:
        """Token ids of y with the end-of-answer token, cut to ``max_answer_tokens``."""
        ids = self.generator.encode_answer(text)[: self.config.max_answer_tokens - 1]
        return [*ids, self.generator.end_id]

    @property
    def trains_query(self) -> bool:
        """Whether this step updates q(x): it trains, and ``retriever_steps`` is not over."""
        limit = self.config.retriever_steps
        return (
            self.query is not None
            and (limit is None or self.step < limit)
            and self.retriever_stopped_at is None
        )

    def query_vectors(self, questions: Sequence[str]) -> torch.Tensor:
        """[B, D] q(x): with gradient while the query encoder trains."""
        if self.query is not None:
            if self.trains_query:
                return self.query.embed(questions)
            with torch.no_grad():
                return self.query.embed(questions)
        return torch.from_numpy(self.index.encoder.encode(list(questions)))

    def prepare(self, batch: Sequence[Question], q: torch.Tensor) -> _Batch:
        """Re-retrieve the top K with the current q(x); prior with gradient; the prompts."""
        xs = [item.question for item in batch]
        k = self.config.k
        now = self.prior.values()  # retrieve with the current w (and tau)
        learns_w = self.prior.bm25_weight.requires_grad  # bm25n's gradient from w = 0 too
        retriever = training_retriever(
            self.index, now["tau"], now["bm25_weight"], score_parts=learns_w
        )
        hits = retriever.search_batch(xs, k=k, query_vectors=q.detach().numpy())
        prompts = passage_prompts(self.generator, xs, hits, k)  # names a question without hits
        store = self.index.store
        ids = [h.passage.id for hs in hits for h in hs]
        flat = store.vectors(store.rowids_for(ids), q.shape[1])  # [N, D], one read
        rows = np.split(flat, np.cumsum([len(hs) for hs in hits])[:-1])  # B of [n_b, D]
        d, mask = pad_passages(rows, k)  # [B, K, D] the fixed d(z_j), [B, K]
        dense = inner_products(torch.from_numpy(d), q)  # [B, K], with gradient into q(x)
        bm25, _ = pad_passages([np.array([h.bm25 or 0.0 for h in hs]) for hs in hits], k)
        # [B, K] log p_eta(z_j|x), with gradient into q(x), w and tau
        prior = self.prior.log_prior(dense, torch.from_numpy(bm25), torch.from_numpy(mask))
        answers = [self.answer_ids(item.answers[0]) for item in batch]
        return _Batch(prior, prompts, answers)

    def loss(self, batch: Sequence[Question]) -> tuple[torch.Tensor, dict[str, float]]:
        """-log p_RAG(y|x) averaged over the batch, and where the time went."""
        per_question, times = self.question_losses(batch)
        return per_question.mean(), times

    def question_losses(self, batch: Sequence[Question]) -> tuple[torch.Tensor, dict[str, float]]:
        """[B] -log p_RAG(y_b|x_b), one per question, and where the time went."""
        # dropout (the generator's, LoRA's, q(x)'s) can only draw from torch's global
        # generator: this run's stream is installed there for the forward passes
        with self.rng.active():
            t0 = time.perf_counter()
            q = self.query_vectors([item.question for item in batch])
            prepared = self.prepare(batch, q)
            t1 = time.perf_counter()
            eps = self.config.label_smoothing
            tl = self._generator_logprobs(prepared, smoothing=eps > 0)
        nll = rag_sequence_nll if self.config.mode == "rag-sequence" else rag_token_nll
        losses = nll(
            prepared.log_prior,
            tl.logprobs,
            tl.mask,
            epsilon=eps,
            smooth_logprobs=tl.smooth,
            reduction="none",
        )
        t2 = time.perf_counter()
        return losses, {"retrieve": t1 - t0, "forward": t2 - t1}

    def _generator_logprobs(self, prepared: _Batch, smoothing: bool) -> TokenLogprobs:
        """[B, K, T] log p_phi(y|x,z_j); only the top ``grad_passages`` with autograd."""
        n = self.config.grad_passages
        k = len(prepared.prompts[0])
        with self._autocast():
            if n is None or n >= k or not self.config.trains_generator:
                return self.generator.logprobs(
                    prepared.prompts, prepared.answers, smoothing=smoothing
                )
            head = self.generator.logprobs(
                [row[:n] for row in prepared.prompts], prepared.answers, smoothing=smoothing
            )
            with torch.no_grad():
                tail = self.generator.logprobs(
                    [row[n:] for row in prepared.prompts], prepared.answers, smoothing=smoothing
                )
        smooth = (
            torch.cat([head.smooth, tail.smooth], dim=1)
            if head.smooth is not None and tail.smooth is not None
            else None
        )
        return TokenLogprobs(torch.cat([head.logprobs, tail.logprobs], dim=1), head.mask, smooth)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bfloat16 autocast of the generator's forward pass, when configured."""
        if self.config.autocast == "none":
            return contextlib.nullcontext()
        device = self.generator.model.device.type
        return torch.autocast(device, dtype=getattr(torch, self.config.autocast))

    def _set_train(self, on: bool) -> None:
        self.model.train(on)
        if self.query is not None:
            self.query.model.train(on and self.config.query_dropout)

    def _nothing_trains(self) -> bool:
        """q(x) has stopped (retriever_steps, retriever_patience) and the generator and
        the prior are frozen."""
        cfg = self.config
        return not cfg.trains_generator and not cfg.trains_prior and not self.trains_query

    # ------------------------------------------------------------------ the loop

    def train(
        self,
        examples: Sequence[Question],
        dev: Dataset | None = None,
        progress: ProgressFn | None = None,
    ) -> list[dict[str, Any]]:
        """Run until the epochs, ``max_steps`` or ``max_minutes`` end; returns the history."""
        cfg = self.config
        examples = [e for e in examples if e.answers]
        if not examples:
            raise MixragError("no training examples with an answer")
        total = self.total_steps = loop.total_steps(len(examples), cfg)
        state = (self._state or {}).get("scheduler")
        self._scheduler = loop.schedule(self.optimizer, total, cfg, self.query is not None, state)
        patience = cfg.retriever_patience is not None and self.query is not None
        if patience and dev is None:
            raise MixragError(
                f"retriever_patience={cfg.retriever_patience} needs a dev set (--dev)"
            )
        if dev is not None and self.step == 0 and self.dev_start is None:
            self.dev_start = self.evaluate(dev)  # the untrained models: the baseline
        if patience and self.query is not None and self.dev_start is not None:
            self.early.start(self.dev_start, self.step, self.query)  # the first to beat
        started = time.perf_counter() - self.elapsed_s
        budget_s = None if cfg.max_minutes is None else 60 * cfg.max_minutes
        stopped = (budget_s is not None and self.elapsed_s >= budget_s) or self._nothing_trains()
        self._set_train(True)
        while self.step < total and self.epoch < cfg.epochs and not stopped:
            batches = loop.epoch_batches(len(examples), cfg, self.epoch)
            while self.position < len(batches) and self.step < total:
                group = batches[self.position : self.position + cfg.grad_accum]
                record = self._optimizer_step([[examples[i] for i in idx] for idx in group])
                self.position += len(group)
                self.elapsed_s = time.perf_counter() - started
                out_of_time = budget_s is not None and self.elapsed_s >= budget_s
                epoch_done = self.position >= len(batches)
                if dev is not None and loop.dev_due(cfg, self.step, epoch_done):
                    record["dev"] = self.evaluate(dev)
                    if patience and self.query is not None and self.trains_query:
                        self.early.observe(record["dev"], self.step, self.query)
                        record["retriever_best"] = dict(self.early.best or {})
                if progress is not None:
                    progress(loop.progress_of(self.history, total, cfg))
                if out_of_time or self._nothing_trains():
                    stopped = True
                    break
                if self.step % cfg.checkpoint_every == 0 and not epoch_done:
                    self.save()
            if self.position >= len(batches):
                self.epoch += 1
                self.position = 0
            self.save()
        if patience and self.trains_query and dev is not None:
            self._end_early_stopping(dev)
            self.save()
        self._set_train(False)
        return self.history

    def _optimizer_step(self, micro_batches: Sequence[Sequence[Question]]) -> dict[str, Any]:
        """One optimiser step over the accumulated micro-batches; its history record."""
        t0 = time.perf_counter()
        query_trained = self.trains_query
        losses, times = loop.accumulate(self.question_losses, micro_batches)
        assert self._scheduler is not None
        grad_norm = loop.optimizer_step(self.optimizer, self._scheduler, self.config.max_grad_norm)
        self.prior.project()
        self.step += 1
        record = loop.step_record(
            self.step,
            self.epoch,
            losses,
            time.perf_counter() - t0,
            grad_norm,
            [g["lr"] for g in self.optimizer.param_groups],
            query_trained,
            times,
        )
        record["prior"] = self.prior.values()
        self.history.append(record)
        return record

    def _end_early_stopping(self, dev: Dataset) -> None:
        """The run is over with q(x) still training: measure its last weights (unless the
        last step just did), then keep the best of all the evaluations."""
        assert self.query is not None
        if self.history and "dev" not in self.history[-1]:
            self.history[-1]["dev"] = self.evaluate(dev, limit=0)
            self.early.observe(self.history[-1]["dev"], self.step, self.query)
        self.early.finish(self.step, self.query)
        if self.history:
            self.history[-1]["retriever_best"] = dict(self.early.best or {})

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, dev: Dataset, limit: int | None = None) -> dict[str, float]:
        """The current models on ``dev`` (:func:`mixrag.train.dev.evaluate_dev`): dense
        retrieval with the current q(x) on every question (answer@1/5/20/K, and
        recall@1/5/20/K and MRR where the questions name gold passages); RAG-Sequence EM
        / F1 on a seeded sample of ``limit`` of them (default ``eval_limit``; 0 =
        retrieval only). A figure that cannot be measured is absent, never None."""
        from mixrag.generator.hf import TransformersGenerator

        limit = self.config.eval_limit if limit is None else limit
        generator = TransformersGenerator(
            dataclasses.replace(self.generator.config, track_grad=False),
            model=self.model,
            tokenizer=self.generator.tokenizer,
        )
        self._set_train(False)
        try:
            return evaluate_dev(
                self.index,
                dev,
                query=self.query,
                generator=generator,
                k=self.config.k,
                tau=self.prior.values()["tau"],
                bm25_weight=self.prior.values()["bm25_weight"],
                limit=limit,
            )
        finally:
            self._set_train(True)

    # ------------------------------------------------------------------ saving

    def save(self) -> Path:
        """Write the run folder's checkpoint (atomically), history and loss curve."""
        path = checkpoint_path(self.run_dir)
        cfg = self.config
        manifest = {
            "train_config": cfg.to_dict(),
            "generator_config": dataclasses.replace(
                self.generator.config, track_grad=False, model=self.base_model_name
            ).to_dict(),
            "base_model": self.base_model_name,
            "index": index_identity(self.index),
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "total_steps": self.total_steps,
            "has_query_encoder": self.query is not None,
            "has_generator": cfg.trains_generator,
            "elapsed_s": self.elapsed_s,
            "dev_start": self.dev_start,
            "retriever_early_stop": self.early.to_manifest(),
            "prior": self.prior.values(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

        def parts(tmp: Path) -> None:
            if self.query is not None:
                self.query.save(tmp / "query_encoder")
            if cfg.trains_generator:
                self.model.save_pretrained(str(tmp / "generator"))
                if cfg.generator_update == "full":
                    self.generator.tokenizer.save_pretrained(str(tmp / "generator"))
            state = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self._scheduler.state_dict() if self._scheduler else {},
                "torch_rng": self.rng.get_state(),  # dropout's stream, continued on resume
            }
            torch.save(state, tmp / TRAINER_STATE)
            self.early.save_weights(tmp)  # q(x)'s best so far, to go back to

        write_checkpoint(path, manifest, parts)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(
            self.run_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in self.history)
        )
        if self.history:
            plot_loss(self.history, self.run_dir / "loss.png", self.dev_start)
        return path
