"""Training checkpoints: one folder, replaced atomically, usable as ``--model``.

Layout::

    ckpt/
      mixrag-checkpoint.json   format version, TrainConfig, generator config and base
                               model, the index it was trained against, step/epoch/position
      query_encoder/           trained q(x) (sentence-transformers folder), if trained
      query_encoder_best.pt    q(x)'s best weights so far under retriever_patience, if any
      generator/               LoRA adapters (peft) or full weights, if trained
      trainer_state.pt         optimizer + scheduler state, the run's RNG stream (--resume)
      history.jsonl, loss.png  one line per optimiser step; the loss curve

A new checkpoint is written to a hidden sibling folder and swapped in with two renames,
so a crash leaves either the previous checkpoint or the new one (a crash between the
renames leaves ``.ckpt.old-*``, which :func:`read_checkpoint` puts back).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixrag.atomic import fsync_dir
from mixrag.errors import IndexMismatchError, MixragError
from mixrag.train.config import TrainConfig

if TYPE_CHECKING:
    from mixrag.generator.hf import TransformersGenerator
    from mixrag.index.opening import AnyIndex
    from mixrag.train.models import QueryEncoder

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "mixrag-checkpoint.json"
CHECKPOINT_DIR = "checkpoint"  # a run folder's checkpoint, beside its history and plots
FORMAT_VERSION = 1


def checkpoint_path(run: str | Path) -> Path:
    """The checkpoint folder of a run folder (a run folder holds it, the history, plots)."""
    return Path(run) / CHECKPOINT_DIR


def index_identity(index: AnyIndex) -> dict[str, Any]:
    """What a trained q(x) depends on: the passages' encoder and how they were cut."""
    return {
        "path": index.location,
        "encoder": index.config.encoder.model,
        "encoder_fingerprint": index.encoder.fingerprint,
        "chunking": index.config.to_dict()["chunking"],
        "passages": index.store.counts()["passages"],
    }


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / CHECKPOINT_FILE).is_file()


def find_checkpoint(path: str | Path) -> Path | None:
    """The checkpoint folder that ``path`` names: itself, or a run folder's ``checkpoint/``."""
    p = Path(path)
    for candidate in (p, checkpoint_path(p)):
        if is_checkpoint(candidate):
            return candidate
    return None


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint folder's manifest, read without loading any weights."""

    path: Path
    train_config: TrainConfig
    generator_config: dict[str, Any]
    base_model: str
    index: dict[str, Any]
    step: int
    epoch: int
    position: int
    has_query_encoder: bool
    has_generator: bool
    manifest: dict[str, Any]

    @property
    def identity(self) -> dict[str, Any]:
        """Which trained weights these are: folder, step and the time they were written."""
        return {
            "checkpoint": str(self.path.resolve()),
            "step": self.step,
            "created": self.manifest.get("created"),
        }

    @property
    def prior(self) -> dict[str, float]:
        """The prior's w and tau as trained (learned, or the run's settings)."""
        saved = self.manifest.get("prior")
        return dict(saved) if isinstance(saved, dict) else self.train_config.prior

    def check_index(self, index: AnyIndex) -> None:
        """Refuse an index whose passage vectors this q(x) was not trained against."""
        now = index_identity(index)
        for key in ("encoder_fingerprint", "chunking"):
            if now[key] != self.index.get(key):
                raise IndexMismatchError(
                    f"checkpoint {self.path} was trained against an index with {key} "
                    f"{self.index.get(key)!r}, but {index.location} has {now[key]!r}: its query "
                    "encoder does not fit these passage vectors"
                )
        if now["passages"] != self.index.get("passages"):
            log.warning(
                "checkpoint %s was trained with %s passages in the index, %s has %s now",
                self.path,
                self.index.get("passages"),
                index.location,
                now["passages"],
            )

    def load_query_encoder(self) -> QueryEncoder | None:
        from mixrag.train.models import QueryEncoder

        if not self.has_query_encoder:
            return None
        return QueryEncoder.load(self.path / "query_encoder")

    def served_generator(self) -> tuple[str, str | None]:
        """What a generator server must serve for this run: (the model whose tokeniser
        and base weights it uses, the folder of the trained weights or LoRA adapters,
        or None when the generator was not trained)."""
        folder = str(self.path / "generator")
        if not self.has_generator:
            return self.base_model, None
        if self.train_config.generator_update == "full":
            return folder, folder
        return self.base_model, folder

    def load_generator(self, trainable: bool = False, **overrides: Any) -> TransformersGenerator:
        """The trained generator (LoRA merged into the weights unless ``trainable``).

        ``overrides``: GeneratorConfig fields to change (e.g. ``device``, ``dtype``).
        """
        from mixrag.generator.config import GeneratorConfig
        from mixrag.generator.hf import TransformersGenerator
        from mixrag.generator.models import load

        cfg = GeneratorConfig.from_dict({**self.generator_config, **overrides, "track_grad": False})
        model: Any
        if self.has_generator and self.train_config.generator_update == "full":
            model, tok = load(str(self.path / "generator"), cfg.dtype, cfg.device, cfg.cache_dir)
        else:
            model, tok = load(self.base_model, cfg.dtype, cfg.device, cfg.cache_dir)
            if self.has_generator:
                from peft import PeftModel

                model = PeftModel.from_pretrained(
                    model, str(self.path / "generator"), is_trainable=trainable
                )
                if not trainable:
                    model = model.merge_and_unload()
        if not trainable:
            model.eval()
        return TransformersGenerator(cfg, model=model, tokenizer=tok)


def read_checkpoint(path: str | Path) -> Checkpoint:
    p = Path(path)
    if not is_checkpoint(p):
        olds = sorted(p.parent.glob(f".{p.name}.old-*")) if p.parent.exists() else []
        if olds and not p.exists():
            os.rename(olds[-1], p)  # a crash between the two renames of a save
        else:
            raise MixragError(f"{p} is not a mixrag checkpoint (no {CHECKPOINT_FILE})")
    try:
        m = json.loads((p / CHECKPOINT_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise MixragError(f"{p / CHECKPOINT_FILE}: unreadable ({e})") from None
    if m.get("format_version") != FORMAT_VERSION:
        raise MixragError(
            f"{p}: checkpoint format {m.get('format_version')!r}, this mixrag reads "
            f"{FORMAT_VERSION}"
        )
    return Checkpoint(
        path=p,
        train_config=TrainConfig.from_dict(m["train_config"]),
        generator_config=m["generator_config"],
        base_model=m["base_model"],
        index=m["index"],
        step=int(m["step"]),
        epoch=int(m["epoch"]),
        position=int(m["position"]),
        has_query_encoder=bool(m["has_query_encoder"]),
        has_generator=bool(m["has_generator"]),
        manifest=m,
    )


def write_checkpoint(
    path: str | Path, manifest: dict[str, Any], write_parts: Callable[[Path], None]
) -> None:
    """Write a checkpoint atomically: ``write_parts(tmp)`` fills the folder, then swap."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.parent / f".{p.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        write_parts(tmp)
        with open(tmp / CHECKPOINT_FILE, "w", encoding="utf-8") as f:
            json.dump({"format_version": FORMAT_VERSION, **manifest}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = p.parent / f".{p.name}.old-{os.getpid()}"
    if p.exists():
        os.rename(p, old)
    os.rename(tmp, p)
    fsync_dir(p.parent)
    if old.exists():
        shutil.rmtree(old)
