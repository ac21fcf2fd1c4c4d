"""TrainConfig: how the retriever's query encoder and the generator are trained jointly."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mixrag.errors import MixragError
from mixrag.retriever.retriever import DEFAULT_BM25_WEIGHT, DEFAULT_TAU

TRAIN_MODES = ("rag-sequence", "rag-token")
#: The parts ``freeze`` can hold fixed: q(x), p_phi and the prior's w and tau.
FREEZE = ("retriever", "generator", "prior")
GENERATOR_UPDATES = ("lora", "full")
AUTOCAST = ("none", "bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    """Joint training of q(x) (eta) and p_phi (phi) by -log p_RAG(y|x), z latent (§2.4).

    mode:            the mixture whose marginal likelihood is maximised.
    k:               passages per question during training, re-retrieved every step with
                     the current query encoder.
    grad_passages:   the generator's gradient flows through the top N of the K passages
                     (by prior); the other K - N are scored without an autograd graph
                     (about half a forward pass each, no backward). The loss is still
                     -log p_RAG over all K and q(x)'s gradient is exact (it depends on
                     the K likelihoods, not on their gradients); p_phi's gradient leaves
                     out the terms of passages N+1..K, each weighted by its posterior.
                     None (default): all K, the exact gradient of both sides.
    epochs:          passes over the training questions.
    max_steps:       stop after this many optimiser steps (None: the epochs decide).
    max_minutes:     stop after this much training time (summed over resumes), with a
                     checkpoint; a resumed run past it stops at once.
    batch_size:      questions per forward/backward pass.
    grad_accum:      passes accumulated per optimiser step (effective batch = product).
    lr:              AdamW learning rate of the generator (the paper's 3e-5 for full
                     fine-tuning; LoRA usually wants ~1e-4..1e-3).
    lr_retriever:    AdamW learning rate of the query encoder.
    retriever_steps: q(x) trains for the first N optimiser steps only (its learning rate
                     warms up and decays to zero over those N), then stays fixed while
                     the generator trains on; retrieval inside every step still uses
                     the current q(x). None: q(x) trains for the whole run. A way to
                     stop q(x) early, at the step where dev recall peaks, when it
                     starts to fit the training documents' passages (docs/BENCHMARKS.md,
                     "q(x) early-stopped on validation articles"). With the generator
                     frozen it ends the run.
    weight_decay:    AdamW weight decay.
    warmup_steps:    linear warm-up, then linear decay to 0 at the last step.
    max_grad_norm:   gradient clipping (global L2 norm over all trained parameters).
    label_smoothing: epsilon of :mod:`mixrag.mixture.loss` (0 = exactly -log p_RAG).
    freeze:          the parts held fixed, comma-separated: "retriever" (q(x)),
                     "generator" (p_phi; the paper's Table 6 ablation), "prior" (w and
                     tau, as lr_prior = 0 does); "none" trains all. Ablations:
                     "retriever,generator" trains the prior alone.
    generator_update: "lora" (adapters via peft) or "full" fine-tuning.
    lora_r, lora_alpha, lora_dropout, lora_targets: the LoRA adapters.
    train_layers:    train just the top N decoder layers (LoRA: adapters there only;
                     full: those layers and the final norm); backward then stops below
                     them. None trains all.
    autocast:        "bfloat16" runs the generator's training forward pass (and so its
                     backward) in bfloat16 under ``torch.autocast``, weights, adapters and
                     optimizer state staying float32; "none" keeps it all float32. Fast
                     only on CPUs with bfloat16 matrix units (AMX, AVX512-BF16): see
                     docs/BENCHMARKS.md. Evaluation and inference stay float32.
    query_dropout:   keep the query encoder's dropout on while training. Off by default,
                     so that the K passages retrieved inside a training step are the ones
                     the same q(x) retrieves at inference (dropout changes which passages
                     come back, not only their prior). Measured on 12 batches of SQuAD
                     training questions (Qwen, untrained): mean -log p_RAG 10.82 with it
                     off, 10.74 on, so neither choice costs anything measurable.
    few_shot:        prompts with the few-shot examples (longer, slower); the trained
                     generator is then used with the same setting.
    max_answer_tokens: answers longer than this are cut (token count, end token added).
    tau:             prior temperature, softmax(s / tau).
    bm25_weight:     w in the retriever score s = d(z)ᵀq(x) + w · bm25n(x, z), its value
                     at step 0 (passages are retrieved as ``combined`` while w > 0, by
                     dense search at w = 0). Runs saved before it existed were trained
                     with the paper's score and read back with w = 0.
    lr_prior:        learning rate of the prior's w and tau (:mod:`mixrag.train.prior`),
                     learned by the same loss as q(x); 0 keeps both at their settings.
                     The learned values are in the checkpoint, and a run answers with
                     them.
    seed:            data order, initialisation of adapters, dropout.
    checkpoint_every: optimiser steps between checkpoints (and at the end).
    retriever_patience: early stopping of q(x) on the dev set: every dev evaluation
                     (``eval_every``, and one before the first step) compares dev
                     recall@k (k = ``k``, the passages the generator reads), or
                     answer-in-top-k for dev questions without gold passages (the log
                     and the run's ``retriever_best.metric`` say which), with the best
                     so far; after this many evaluations without a strictly higher one,
                     q(x) goes back to its best weights (the untrained encoder if none
                     beat it) and stays fixed, while the generator trains on; a run that
                     ends first (steps, epochs, minutes) also ends with q(x)'s best
                     weights. Needs a dev set of other documents than the training
                     questions'. None: off.
    eval_every:      optimiser steps between dev evaluations (None: once per epoch);
                     with a dev set the untrained models are also evaluated once before
                     the first step (``Trainer.dev_start``, step 0 of the curve).
    eval_limit:      dev questions (a seeded sample) answered in those evaluations, for
                     EM / F1; 0 measures retrieval only. Recall@k and MRR of the current
                     q(x) always use every dev question (a query encoding each: cheap).
    """

    mode: str = "rag-sequence"
    k: int = 5
    grad_passages: int | None = None
    epochs: int = 1
    max_steps: int | None = None
    max_minutes: float | None = None
    batch_size: int = 2
    grad_accum: int = 4
    lr: float = 3e-4
    lr_retriever: float = 3e-5
    retriever_steps: int | None = None
    retriever_patience: int | None = None
    weight_decay: float = 0.0
    warmup_steps: int = 10
    max_grad_norm: float = 1.0
    label_smoothing: float = 0.0
    freeze: str = "none"
    generator_update: str = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    train_layers: int | None = None
    autocast: str = "none"
    query_dropout: bool = False
    few_shot: bool = False
    max_answer_tokens: int = 24
    tau: float = DEFAULT_TAU
    bm25_weight: float = DEFAULT_BM25_WEIGHT
    lr_prior: float = 0.01
    seed: int = 0
    checkpoint_every: int = 50
    eval_every: int | None = None
    eval_limit: int = 100

    def __post_init__(self) -> None:
        if self.mode not in TRAIN_MODES:
            raise MixragError(
                f"training mode must be one of {', '.join(TRAIN_MODES)}, got {self.mode!r}"
            )
        if not isinstance(self.freeze, str) or self.frozen - set(FREEZE):  # "", "a,", typos
            raise MixragError(
                f"freeze must be 'none' or a comma-separated set of {', '.join(FREEZE)}, "
                f"got {self.freeze!r}"
            )
        if self.frozen == set(FREEZE):
            raise MixragError(f"freeze={self.freeze!r} leaves nothing to train")
        if self.generator_update not in GENERATOR_UPDATES:
            raise MixragError(
                f"generator_update must be one of {', '.join(GENERATOR_UPDATES)}, "
                f"got {self.generator_update!r}"
            )
        if self.autocast not in AUTOCAST:
            raise MixragError(
                f"autocast must be one of {', '.join(AUTOCAST)}, got {self.autocast!r}"
            )
        positive = (
            "k",
            "epochs",
            "batch_size",
            "grad_accum",
            "lora_r",
            "max_answer_tokens",
            "checkpoint_every",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise MixragError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.eval_limit, int) or self.eval_limit < 0:
            raise MixragError(
                "eval_limit must be a non-negative integer (0: recall only), "
                f"got {self.eval_limit!r}"
            )
        for name in ("retriever_steps", "retriever_patience"):
            if getattr(self, name) is not None and not self.trains_retriever:
                raise MixragError(
                    f"{name}={getattr(self, name)} trains q(x), but freeze={self.freeze!r} "
                    "keeps it fixed; give one of them"
                )
        if self.retriever_patience is not None and self.eval_every is None:
            raise MixragError(
                f"retriever_patience={self.retriever_patience} needs eval_every (dev "
                "evaluations every N steps) to compare q(x) against its best"
            )
        optional = (
            "max_steps",
            "eval_every",
            "train_layers",
            "grad_passages",
            "retriever_steps",
            "retriever_patience",
        )
        for name in optional:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise MixragError(f"{name} must be a positive integer or None, got {value!r}")
        if self.grad_passages is not None and self.grad_passages > self.k:
            raise MixragError(
                f"grad_passages must be at most k ({self.k}), got {self.grad_passages}"
            )
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise MixragError(f"max_minutes must be > 0, got {self.max_minutes}")
        for name in ("bm25_weight", "lr_prior"):
            if not getattr(self, name) >= 0:
                raise MixragError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "lr_retriever", "tau"):
            if not getattr(self, name) > 0:
                raise MixragError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise MixragError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.max_grad_norm <= 0:
            raise MixragError(
                "warmup_steps and weight_decay must be >= 0 and max_grad_norm > 0, got "
                f"{self.warmup_steps}, {self.weight_decay}, {self.max_grad_norm}"
            )

    @property
    def prior(self) -> dict[str, float]:
        """The prior's w and tau at step 0."""
        return {"bm25_weight": self.bm25_weight, "tau": self.tau}

    @property
    def frozen(self) -> frozenset[str]:
        """The parts ``freeze`` holds fixed (empty for "none")."""
        if self.freeze == "none":
            return frozenset()
        return frozenset(p.strip() for p in self.freeze.split(","))

    @property
    def trains_retriever(self) -> bool:
        return "retriever" not in self.frozen

    @property
    def trains_generator(self) -> bool:
        return "generator" not in self.frozen

    @property
    def trains_prior(self) -> bool:
        """w and tau learn: lr_prior > 0 and "prior" not frozen."""
        return self.lr_prior > 0 and "prior" not in self.frozen

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lora_targets"] = list(self.lora_targets)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MixragError(f"unknown training settings: {', '.join(unknown)}")
        d = {"bm25_weight": 0.0, "lr_prior": 0.0, **data}  # older runs: the paper's score
        if "lora_targets" in d:
            d["lora_targets"] = tuple(d["lora_targets"])
        return cls(**d)
