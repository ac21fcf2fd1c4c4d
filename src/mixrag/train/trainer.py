"""Joint training of q(x) and p_phi by the negative marginal log-likelihood (§2.4).

One training step on a batch of (x, y) pairs, z latent:

1. q(x) from the trainable query encoder (with gradient);
2. the top K passages by maximum inner product with the *current* q(x) (re-retrieved
   every step, so the trained encoder can reach passages it did not rank before), their
   stored vectors d(z_j) (fixed: the index is not re-encoded), and the scores
   s_j = d(z_j)ᵀq(x): the gradient reaches q(x) through these K inner products;
3. log p_eta(z_j|x) = log softmax(s / tau) (:func:`mixrag.retriever.prior.log_prior`);
4. log p_phi(y_i|x,z_j,y_<i) for the K passage prompts, [B, K, T] with gradient
   (``TransformersGenerator.logprobs`` with ``track_grad``);
5. loss = -log p_RAG(y|x) of the chosen mode (:mod:`mixrag.mixture.loss`), averaged.

AdamW on the trainable parameters of both sides, gradient accumulation, global-norm
clipping, linear warm-up and decay. Every ``checkpoint_every`` steps the run folder
gets a checkpoint (atomically replaced) with the optimizer state, so ``resume``
continues with the same step count, data order and learning-rate schedule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mixrag.atomic import atomic_path, atomic_write
from mixrag.errors import MixragError
from mixrag.eval.datasets import Dataset, Question
from mixrag.generator.base import TokenLogprobs
from mixrag.mixture.loss import rag_sequence_nll, rag_token_nll
from mixrag.rag import passage_prompts
from mixrag.retriever.prior import inner_products, log_prior, pad_passages
from mixrag.train.checkpoint import (
    index_identity,
    read_checkpoint,
    write_checkpoint,
)
from mixrag.train.config import TrainConfig
from mixrag.train.models import QueryEncoder, prepare_generator, trainable

if TYPE_CHECKING:
    from mixrag.generator.hf import TransformersGenerator
    from mixrag.index.opening import AnyIndex

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
BEST_QUERY_FILE = "query_encoder_best.pt"  # q(x)'s best weights under retriever_patience


def checkpoint_path(run: str | Path) -> Path:
    """The checkpoint folder of a run folder (a run folder holds it, the history, plots)."""
    p = Path(run)
    return p / CHECKPOINT_DIR


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
        from mixrag.generator.config import GeneratorConfig
        from mixrag.generator.hf import TransformersGenerator

        self.index = index
        self.run_dir = Path(run_dir)
        self.step = 0
        self.epoch = 0
        self.position = 0  # micro-batches done in the current epoch
        self.history: list[dict[str, Any]] = []
        self.elapsed_s = 0.0  # training time of the run so far, over all resumes
        # early stopping of q(x) (retriever_patience): the best dev recall so far, its
        # step, evaluations since, and the step at which q(x) went back to it and stopped
        self.retriever_best: dict[str, Any] | None = None
        self.retriever_stopped_at: int | None = None
        self._best_query: dict[str, torch.Tensor] | None = None
        # the dev evaluation of the untrained models, before step 1 (the curve's baseline)
        self.dev_start: dict[str, float] | None = None
        ckpt = None
        if resume:
            ckpt = read_checkpoint(checkpoint_path(self.run_dir))
            ckpt.check_index(index)
            budget = {k: getattr(config, k) for k in ("epochs", "max_steps", "max_minutes")}
            config = dataclasses.replace(ckpt.train_config, **budget)
            self.step, self.epoch, self.position = ckpt.step, ckpt.epoch, ckpt.position
            self.elapsed_s = float(ckpt.manifest.get("elapsed_s", 0.0))
            early = ckpt.manifest.get("retriever_early_stop") or {}
            self.retriever_best = early.get("best")
            self.retriever_stopped_at = early.get("stopped_at")
            self.dev_start = ckpt.manifest.get("dev_start")
            if (ckpt.path / BEST_QUERY_FILE).exists():
                self._best_query = torch.load(ckpt.path / BEST_QUERY_FILE, weights_only=True)
            history = self.run_dir / "history.jsonl"
            if history.exists():
                self.history = [
                    json.loads(line) for line in history.read_text().splitlines() if line.strip()
                ]
                self.history = [h for h in self.history if h.get("step", 0) <= self.step]
        elif (checkpoint_path(self.run_dir)).exists():
            raise MixragError(
                f"{self.run_dir} already holds a training run; pass --resume to continue it "
                "or choose another --out"
            )
        self.config = config
        torch.manual_seed(config.seed)

        # -- the generator: base weights, then LoRA / unfrozen layers / frozen
        if ckpt is not None and ckpt.has_generator and config.generator_update == "lora":
            base = ckpt.load_generator(trainable=True)
            self.base_model_name = ckpt.base_model
            lm: Any = base.model
            tok = base.tokenizer
            gcfg = base.config
        else:
            if ckpt is not None:
                base = (
                    ckpt.load_generator(trainable=True)
                    if ckpt.has_generator
                    else TransformersGenerator(GeneratorConfig.from_dict(ckpt.generator_config))
                )
                self.base_model_name = ckpt.base_model
            elif generator is not None:
                base = generator
                self.base_model_name = generator.config.model
            else:
                gc = GeneratorConfig(model=model) if model else GeneratorConfig()
                base = TransformersGenerator(gc)
                self.base_model_name = gc.model
            base.load()
            lm = prepare_generator(base.model, config)
            tok = base.tokenizer
            gcfg = base.config
        gcfg = dataclasses.replace(
            gcfg, few_shot=config.few_shot, track_grad=config.trains_generator
        )
        self.model: Any = lm
        self.generator = TransformersGenerator(gcfg, model=lm, tokenizer=tok)

        # -- the query encoder: a trainable copy of the index's encoder, or the index's own
        self.query: QueryEncoder | None = None
        if config.trains_retriever:
            loaded = ckpt.load_query_encoder() if ckpt is not None else None
            self.query = loaded or QueryEncoder.copy_of(index.encoder.load())
            for p in self.query.model.parameters():
                p.requires_grad_(True)
        self.retriever = index.retriever(tau=config.tau, method="dense")
        if config.autocast == "bfloat16" and cpu_has_bfloat16_units() is False:
            log.warning(
                "--autocast bfloat16 on a CPU without bfloat16 matrix units (no avx512_bf16 "
                "or amx_bf16 in /proc/cpuinfo): torch emulates them, and a training step "
                "runs several times slower than float32 (docs/BENCHMARKS.md); "
                "use --autocast none here"
            )

        groups = []
        if self.query is not None:
            groups.append({"params": self.query.parameters(), "lr": config.lr_retriever})
        gen_params = trainable(self.model) if config.trains_generator else []
        if gen_params:
            groups.append({"params": gen_params, "lr": config.lr})
        if not groups:
            raise MixragError("nothing to train: both sides are frozen")
        self.optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        self.total_steps = 0
        self._scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self._ckpt_state = (
            torch.load(ckpt.path / "trainer_state.pt", weights_only=False)
            if ckpt is not None
            else None
        )
        if self._ckpt_state is not None:
            self.optimizer.load_state_dict(self._ckpt_state["optimizer"])

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
        hits = self.retriever.search_batch(xs, k=k, query_vectors=q.detach().numpy())
        prompts = passage_prompts(self.generator, xs, hits, k)  # names a question without hits
        store = self.index.store
        ids = [h.passage.id for hs in hits for h in hs]
        flat = store.vectors(store.rowids_for(ids), q.shape[1])  # [N, D], one read
        rows = np.split(flat, np.cumsum([len(hs) for hs in hits])[:-1])  # B of [n_b, D]
        d, mask = pad_passages(rows, k)  # [B, K, D] the fixed d(z_j), [B, K]
        scores = inner_products(torch.from_numpy(d), q)  # [B, K] s_j, with gradient into q(x)
        prior = log_prior(scores, self.config.tau, torch.from_numpy(mask))
        answers = [self.answer_ids(item.answers[0]) for item in batch]
        return _Batch(prior, prompts, answers)

    def loss(self, batch: Sequence[Question]) -> tuple[torch.Tensor, dict[str, float]]:
        """-log p_RAG(y|x) averaged over the batch, and where the time went."""
        per_question, times = self.question_losses(batch)
        return per_question.mean(), times

    def question_losses(self, batch: Sequence[Question]) -> tuple[torch.Tensor, dict[str, float]]:
        """[B] -log p_RAG(y_b|x_b), one per question, and where the time went."""
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

    # ------------------------------------------------------------------ the loop

    def _schedule(self, total: int) -> torch.optim.lr_scheduler.LambdaLR:
        """Linear warm-up, then linear decay to 0 at ``total`` (q(x): at ``retriever_steps``)."""
        lengths = [total] * len(self.optimizer.param_groups)
        if self.query is not None and self.config.retriever_steps is not None:
            lengths[0] = min(total, self.config.retriever_steps)  # q(x) is group 0
        sched = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, [warmup_then_decay(n, self.config.warmup_steps) for n in lengths]
        )
        if self._ckpt_state is not None and "scheduler" in self._ckpt_state:
            sched.load_state_dict(self._ckpt_state["scheduler"])
        return sched

    def _early_stop(self, dev: dict[str, float]) -> None:
        """One dev evaluation of q(x) under ``retriever_patience``: keep the best weights;
        after ``patience`` evaluations without a higher value of the stopping metric
        (:meth:`_stop_metric`), go back to them and stop."""
        best = self.retriever_best
        assert best is not None and self.query is not None
        metric = best.get("metric", f"recall@{self.config.k}")  # runs saved before "metric"
        value = dev[metric]
        if best["value"] is None or value > best["value"]:
            best.update(value=value, step=self.step, bad=0)
            self._best_query = {
                name: t.detach().clone() for name, t in self.query.model.state_dict().items()
            }
            return
        best["bad"] += 1
        if best["bad"] >= (self.config.retriever_patience or 0):
            assert self._best_query is not None
            self.query.model.load_state_dict(self._best_query)
            self.retriever_stopped_at = self.step
            self._best_query = None
            log.info(
                "q(x): dev %s %.4f at step %d not beaten in %d evaluations; "
                "back to those weights, fixed from step %d on",
                metric,
                best["value"],
                best["step"],
                best["bad"],
                self.step,
            )

    def _end_early_stopping(self, dev: Dataset) -> None:
        """The run is over with q(x) still training: measure its last weights (unless the
        last step just did), then keep the best of all the evaluations, as if patience had
        run out now."""
        if self.history and "dev" not in self.history[-1]:
            self.history[-1]["dev"] = self.evaluate(dev, limit=0)
            self._early_stop(self.history[-1]["dev"])
        if self.retriever_stopped_at is None and self.query is not None:
            if self._best_query is not None:
                self.query.model.load_state_dict(self._best_query)
            self.retriever_stopped_at = self.step
            self._best_query = None
            best = self.retriever_best or {}
            log.info(
                "end of run: q(x) back to its best dev %s (%s, step %s)",
                best.get("metric", f"recall@{self.config.k}"),
                best.get("value"),
                best.get("step"),
            )
        if self.history:
            self.history[-1]["retriever_best"] = dict(self.retriever_best or {})

    def _stop_metric(self, dev: dict[str, float]) -> str:
        """What early stopping of q(x) compares: dev recall@K of the gold passages, or,
        for a dev set of plain (question, answers) pairs with no gold passage, DPR's
        answer-in-top-K (a retrieved passage holds an answer string)."""
        k = self.config.k
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

    def _nothing_trains(self) -> bool:
        """q(x) has stopped (retriever_steps, retriever_patience) and the generator is frozen."""
        return not self.config.trains_generator and not self.trains_query

    def _order(self, n: int, epoch: int) -> list[int]:
        return example_order(n, self.config.seed, epoch)

    def _set_train(self, on: bool) -> None:
        self.model.train(on)
        if self.query is not None:
            self.query.model.train(on and self.config.query_dropout)

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
        per_step = cfg.batch_size * cfg.grad_accum
        steps_per_epoch = math.ceil(len(examples) / per_step)
        total = cfg.epochs * steps_per_epoch
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        if not cfg.trains_generator and cfg.retriever_steps is not None:
            total = min(total, cfg.retriever_steps)  # nothing trains after q(x) stops
        self.total_steps = total
        self._scheduler = self._schedule(total)
        if self._ckpt_state is not None:
            random.setstate(self._ckpt_state["python_rng"])
            torch.set_rng_state(self._ckpt_state["torch_rng"])
        if cfg.retriever_patience is not None and self.query is not None and dev is None:
            raise MixragError(
                f"retriever_patience={cfg.retriever_patience} needs a dev set (--dev)"
            )
        if dev is not None and self.step == 0 and self.dev_start is None:
            self.dev_start = self.evaluate(dev)  # the untrained models: the baseline
        patience = cfg.retriever_patience is not None and self.query is not None
        if patience and self.retriever_best is None:  # the untrained q(x): first to beat
            assert self.dev_start is not None
            metric = self._stop_metric(self.dev_start)
            self.retriever_best = {"metric": metric, "value": None, "step": 0, "bad": 0}
            self._early_stop(self.dev_start)
        started = time.perf_counter() - self.elapsed_s
        budget_s = None if cfg.max_minutes is None else 60 * cfg.max_minutes
        stopped = (budget_s is not None and self.elapsed_s >= budget_s) or self._nothing_trains()
        self._set_train(True)
        while self.step < total and self.epoch < cfg.epochs and not stopped:
            order = self._order(len(examples), self.epoch)
            batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
            while self.position < len(batches) and self.step < total:
                group = batches[self.position : self.position + cfg.grad_accum]
                t_step = time.perf_counter()
                query_trained = self.trains_query
                losses, times = [], {"retrieve": 0.0, "forward": 0.0, "backward": 0.0}
                n_ex = 0
                for idx in group:
                    batch = [examples[i] for i in idx]
                    per_question, t = self.question_losses(batch)
                    tb = time.perf_counter()
                    (per_question.sum() / sum(len(g) for g in group)).backward()
                    times["backward"] += time.perf_counter() - tb
                    times["retrieve"] += t["retrieve"]
                    times["forward"] += t["forward"]
                    losses += per_question.detach().tolist()
                    n_ex += len(batch)
                params = [p for g in self.optimizer.param_groups for p in g["params"]]
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
                self.optimizer.step()
                self._scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                self.position += len(group)
                seconds = time.perf_counter() - t_step
                record: dict[str, Any] = {
                    "step": self.step,
                    "epoch": self.epoch,
                    "loss": sum(losses) / n_ex,
                    # one per question: the mean is dominated by the few whose answer is
                    # in none of the K passages, the median is not
                    "losses": losses,
                    "examples": n_ex,
                    "seconds": seconds,
                    "examples_per_s": n_ex / seconds,
                    "grad_norm": grad_norm,
                    "lr": [g["lr"] for g in self.optimizer.param_groups],
                    "query_trained": query_trained,
                    **{f"{k}_s": v for k, v in times.items()},
                }
                self.history.append(record)
                self.elapsed_s = time.perf_counter() - started
                out_of_time = budget_s is not None and self.elapsed_s >= budget_s
                epoch_done = self.position >= len(batches)
                dev_now = dev is not None and (
                    (cfg.eval_every is not None and self.step % cfg.eval_every == 0)
                    or (epoch_done and cfg.eval_every is None)
                )
                if dev_now and dev is not None:
                    record["dev"] = self.evaluate(dev)
                    if cfg.retriever_patience is not None and self.trains_query:
                        self._early_stop(record["dev"])
                        record["retriever_best"] = dict(self.retriever_best or {})
                if progress is not None:
                    rate = statistics_rate(self.history)
                    left = (total - self.step) * per_step / rate if rate else None
                    progress(
                        TrainProgress(
                            self.step,
                            total,
                            self.epoch,
                            record["loss"],
                            rate,
                            left,
                            record.get("dev"),
                        )
                    )
                if out_of_time or self._nothing_trains():
                    stopped = True
                    break
                if self.step % cfg.checkpoint_every == 0 and not epoch_done:
                    self.save()
            if self.position >= len(batches):
                self.epoch += 1
                self.position = 0
            self.save()
        if cfg.retriever_patience is not None and self.trains_query and dev is not None:
            self._end_early_stopping(dev)
            self.save()
        self._set_train(False)
        return self.history

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, dev: Dataset, limit: int | None = None) -> dict[str, float]:
        """Dense retrieval of the current q(x) on every ``dev`` question: answer@1/5/20/K
        (a retrieved passage holds an answer), and recall@1/5/20/K and MRR of the gold
        passages where the questions name them; RAG-Sequence EM / F1 of the current
        models on a seeded sample of ``limit`` of them (default ``eval_limit``; 0 =
        retrieval only). A figure that cannot be measured is absent, never None."""
        from mixrag.eval.runner import EvalConfig, evaluate
        from mixrag.generator.hf import TransformersGenerator
        from mixrag.rag import RAG, RAGConfig

        limit = self.config.eval_limit if limit is None else limit
        out = self.run_dir / "eval" / f"step-{self.step}"
        self._set_train(False)
        try:
            ks = tuple(sorted({1, 5, 20, self.config.k}))  # recall@K decides early stops
            retrieval = EvalConfig(modes=(), retrieval=("dense",), recall_ks=ks)
            dense = evaluate(
                self.index, dev, retrieval, out / "retrieval", fresh=True, query_encoder=self.query
            )["retrieval"]["dense"]
            result = {
                **{f"recall@{k}": v for k, v in dense["recall"].items() if v is not None},
                **{f"answer@{k}": v for k, v in dense["answer_in_topk"].items() if v is not None},
            }
            if dense["mrr"] is not None:
                result["mrr"] = dense["mrr"]
            if limit > 0:
                gen = TransformersGenerator(
                    dataclasses.replace(self.generator.config, track_grad=False),
                    model=self.model,
                    tokenizer=self.generator.tokenizer,
                )
                retriever = self.index.retriever(
                    tau=self.config.tau, method="dense", query_encoder=self.query
                )
                rag = RAG(retriever, gen, RAGConfig(mode="rag-sequence", k=self.config.k))
                answers = EvalConfig(
                    modes=("rag-sequence",),
                    ks=(self.config.k,),
                    limit=limit,
                    retrieval=(),
                    batch_size=4,
                )
                res = evaluate(self.index, dev, answers, out / "answers", rag, fresh=True)
                run = res["answers"][f"rag-sequence@{self.config.k}"]
                result = {"em": run["em"], "f1": run["f1"], **result}
        finally:
            self._set_train(True)
        return result

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
            "retriever_early_stop": {
                "best": self.retriever_best,
                "stopped_at": self.retriever_stopped_at,
            },
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
                "python_rng": random.getstate(),
                "torch_rng": torch.get_rng_state(),
            }
            torch.save(state, tmp / "trainer_state.pt")
            if self._best_query is not None:  # q(x)'s best so far, to go back to
                torch.save(self._best_query, tmp / BEST_QUERY_FILE)

        write_checkpoint(path, manifest, parts)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(
            self.run_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in self.history)
        )
        if self.history:
            plot_loss(self.history, self.run_dir / "loss.png", self.dev_start)
        return path


def cpu_has_bfloat16_units(cpuinfo: str | Path = "/proc/cpuinfo") -> bool | None:
    """Whether the CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX), from the
    flags in ``cpuinfo``; None where that file cannot be read (not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def warmup_then_decay(total: int, warmup: int) -> Callable[[int], float]:
    """The learning-rate factor at step s: (s+1)/(w+1) for s < w, then linear to 0 at
    ``total`` (w = ``warmup``, at most total - 1)."""
    warm = min(warmup, max(0, total - 1))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        return max(0.0, (total - step) / max(1, total - warm))

    return factor


def example_order(n: int, seed: int, epoch: int) -> list[int]:
    """The order in which epoch ``epoch`` of a run seeded ``seed`` reads its n examples."""
    idx = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(idx)
    return idx


def statistics_rate(history: Sequence[dict[str, Any]], window: int = 20) -> float:
    """Examples per second over the last ``window`` steps."""
    recent = history[-window:]
    seconds = sum(h["seconds"] for h in recent)
    return sum(h["examples"] for h in recent) / seconds if seconds > 0 else 0.0


def plot_loss(
    history: Sequence[dict[str, Any]], path: Path, dev_start: dict[str, float] | None = None
) -> None:
    """The training loss per step (raw, its rolling mean, and the rolling median over the
    questions, which the few answers found in no passage do not dominate); dev EM and
    recall@5 where measured, from ``dev_start`` (the untrained models' evaluation) at
    step 0 when given."""

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = [h["step"] for h in history]
    losses = [h["loss"] for h in history]
    fig = Figure(figsize=(9, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(steps, losses, color="#9ecae1", linewidth=1, label="loss (per step)")
    window = max(5, len(losses) // 20) if len(losses) >= 10 else 1
    if window > 1:
        smooth = [
            sum(losses[max(0, i - window + 1) : i + 1])
            / len(losses[max(0, i - window + 1) : i + 1])
            for i in range(len(losses))
        ]
        ax.plot(steps, smooth, color="#08519c", linewidth=2, label=f"loss ({window}-step mean)")
    if all("losses" in h for h in history):  # histories from before 2026-12-03 lack them
        medians = [
            statistics.median(
                x for h in history[max(0, i - window + 1) : i + 1] for x in h["losses"]
            )
            for i in range(len(history))
        ]
        ax.plot(
            steps,
            medians,
            color="#6a51a3",
            linewidth=2,
            linestyle="--",
            label=f"median over the questions of {window} step{'s' if window > 1 else ''}",
        )
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("-log p_RAG(y|x)")
    ax.grid(alpha=0.3)
    dev = [(0, dev_start)] if dev_start else []
    dev += [(h["step"], h["dev"]) for h in history if h.get("dev")]
    handles, labels = ax.get_legend_handles_labels()
    if dev:
        ax2 = ax.twinx()
        gold = any(d.get("recall@5") is not None for _s, d in dev)
        top5 = ("recall@5", "dev R@5") if gold else ("answer@5", "dev answer@5")
        for key, label, color in (("em", "dev EM", "#d94801"), (*top5, "#238b45")):
            points = [
                (s, 100 * d[key] if key != "em" else d[key])
                for s, d in dev
                if d.get(key) is not None
            ]
            if points:
                ax2.plot(
                    [s for s, _ in points], [v for _, v in points], "o-", color=color, label=label
                )
        ax2.set_ylabel(f"dev EM / {top5[0]} (%)")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper right")
    ax.set_title("Joint RAG training: negative marginal log-likelihood")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
