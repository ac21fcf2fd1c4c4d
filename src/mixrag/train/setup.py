"""Setting up a training run: its folder (new, or resumed from its checkpoint), the
trainable generator and q(x), and the optimizer over them.

The generator comes one of three ways: a resumed run's checkpoint (its adapters or
fully trained weights; frozen: the base model it names), a loaded
``TransformersGenerator`` the caller passes (its model becomes the trained one), or a
model name to load. q(x) is a resumed run's trained encoder or a trainable copy of the
index's (the index keeps its own). Loading runs under ``rng.isolated``: module
constructors draw initial weights from torch's global generator before the stored ones
replace them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mixrag.errors import MixragError
from mixrag.train.checkpoint import Checkpoint, checkpoint_path, read_checkpoint
from mixrag.train.config import TrainConfig
from mixrag.train.models import QueryEncoder, prepare_generator, trainable
from mixrag.train.prior import LearnedPrior

if TYPE_CHECKING:
    from mixrag.generator.hf import TransformersGenerator
    from mixrag.index.opening import AnyIndex

log = logging.getLogger(__name__)

BUDGET = ("epochs", "max_steps", "max_minutes")  # what a resume may change
TRAINER_STATE = "trainer_state.pt"  # optimizer, scheduler and RNG state, in the checkpoint


@dataclass
class Resumed:
    """Where a resumed run continues: its checkpoint, counters and saved state."""

    checkpoint: Checkpoint
    step: int
    epoch: int
    position: int  # micro-batches done in the current epoch
    elapsed_s: float  # training time so far, over all resumes
    dev_start: dict[str, float] | None
    history: list[dict[str, Any]]  # up to the checkpoint's step
    state: dict[str, Any]  # TRAINER_STATE: optimizer, scheduler, torch_rng


def open_run(
    run_dir: Path, index: AnyIndex, config: TrainConfig, resume: bool
) -> tuple[TrainConfig, Resumed | None]:
    """The run's settings and, with ``resume``, what its checkpoint holds.

    A resumed run keeps its checkpoint's settings except the budget (epochs,
    max_steps, max_minutes), which ``config`` gives; its index must be the one trained
    against. A new run refuses a folder that already holds one.
    """
    if not resume:
        if checkpoint_path(run_dir).exists():
            raise MixragError(
                f"{run_dir} already holds a training run; pass --resume to continue it "
                "or choose another --out"
            )
        return config, None
    ckpt = read_checkpoint(checkpoint_path(run_dir))
    ckpt.check_index(index)
    config = dataclasses.replace(ckpt.train_config, **{k: getattr(config, k) for k in BUDGET})
    history: list[dict[str, Any]] = []
    path = run_dir / "history.jsonl"
    if path.exists():
        lines = path.read_text().splitlines()
        history = [json.loads(line) for line in lines if line.strip()]
        history = [h for h in history if h.get("step", 0) <= ckpt.step]
    return config, Resumed(
        checkpoint=ckpt,
        step=ckpt.step,
        epoch=ckpt.epoch,
        position=ckpt.position,
        elapsed_s=float(ckpt.manifest.get("elapsed_s", 0.0)),
        dev_start=ckpt.manifest.get("dev_start"),
        history=history,
        state=torch.load(ckpt.path / TRAINER_STATE, weights_only=False),
    )


def base_generator(
    ckpt: Checkpoint | None, model: str | None, generator: TransformersGenerator | None
) -> tuple[TransformersGenerator, str]:
    """The loaded generator training starts from, and the name of its base model."""
    from mixrag.generator.config import GeneratorConfig
    from mixrag.generator.hf import TransformersGenerator

    if ckpt is not None:
        if ckpt.has_generator:  # LoRA: base + trainable adapters; full: trained weights
            base = ckpt.load_generator(trainable=True)
        else:
            base = TransformersGenerator(GeneratorConfig.from_dict(ckpt.generator_config))
        return base.load(), ckpt.base_model
    if generator is not None:
        return generator.load(), generator.config.model
    config = GeneratorConfig(model=model) if model else GeneratorConfig()
    return TransformersGenerator(config).load(), config.model


def trainable_generator(
    config: TrainConfig,
    ckpt: Checkpoint | None,
    model: str | None,
    generator: TransformersGenerator | None,
) -> tuple[Any, TransformersGenerator, str]:
    """(the model being trained, a generator over it, the base model's name): LoRA
    adapters added, layers unfrozen, or all frozen, as ``config`` says."""
    from mixrag.generator.hf import TransformersGenerator

    base, name = base_generator(ckpt, model, generator)
    resumed_lora = ckpt is not None and ckpt.has_generator and config.generator_update == "lora"
    # a resumed run's adapters are in the loaded model already
    lm = base.model if resumed_lora else prepare_generator(base.model, config)
    gcfg = dataclasses.replace(
        base.config, few_shot=config.few_shot, track_grad=config.trains_generator
    )
    return lm, TransformersGenerator(gcfg, model=lm, tokenizer=base.tokenizer), name


def trainable_query_encoder(
    index: AnyIndex, config: TrainConfig, ckpt: Checkpoint | None
) -> QueryEncoder | None:
    """q(x) with gradient: the checkpoint's, or a copy of the index's encoder; None when
    the retriever is frozen (the index's own encoder then encodes the questions)."""
    if not config.trains_retriever:
        return None
    loaded = ckpt.load_query_encoder() if ckpt is not None else None
    query = loaded or QueryEncoder.copy_of(index.encoder.load())
    for p in query.model.parameters():
        p.requires_grad_(True)
    return query


def optimizer_for(
    query: QueryEncoder | None, lm: Any, config: TrainConfig, prior: LearnedPrior | None = None
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters: q(x) first (group 0), then the generator,
    then the prior's w and tau (when it learns; no weight decay)."""
    groups: list[dict[str, Any]] = []
    if query is not None:
        groups.append({"params": query.parameters(), "lr": config.lr_retriever})
    gen_params = trainable(lm) if config.trains_generator else []
    if gen_params:
        groups.append({"params": gen_params, "lr": config.lr})
    if prior is not None and config.trains_prior:
        groups.append({"params": list(prior.parameters()), "lr": config.lr_prior,
                       "weight_decay": 0.0})  # fmt: skip
    if not groups:
        raise MixragError(f"nothing to train: freeze={config.freeze!r}, lr_prior={config.lr_prior}")
    return torch.optim.AdamW(groups, weight_decay=config.weight_decay)


def warn_if_slow_autocast(config: TrainConfig) -> None:
    if config.autocast == "bfloat16" and cpu_has_bfloat16_units() is False:
        log.warning(
            "--autocast bfloat16 on a CPU without bfloat16 matrix units (no avx512_bf16 "
            "or amx_bf16 in /proc/cpuinfo): torch emulates them, and a training step "
            "runs several times slower than float32 (docs/BENCHMARKS.md); "
            "use --autocast none here"
        )


def cpu_has_bfloat16_units(cpuinfo: str | Path = "/proc/cpuinfo") -> bool | None:
    """Whether the CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX), from the
    flags in ``cpuinfo``; None where that file cannot be read (not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    flags = {f for line in text.splitlines() if line.startswith("flags") for f in line.split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})
