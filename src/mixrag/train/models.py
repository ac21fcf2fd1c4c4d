"""The trainable parts: the query encoder q(x) and the generator (LoRA, full, or frozen).

The document encoder d(z) and the index stay fixed (Lewis et al. 2020, §2.4: updating
d(z) would mean re-indexing the corpus). q(x) starts as a copy of the index's encoder,
so step 0 retrieves exactly what the untrained system retrieves.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mixrag.encoders.base import weights_fingerprint
from mixrag.errors import MissingDependencyError, MixragError
from mixrag.train.config import TrainConfig
from mixrag.train.rng import seeded

log = logging.getLogger(__name__)


class QueryEncoder:
    """q(x) as a trainable sentence-transformers model; also an inference ``Encoder``."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    def copy_of(cls, encoder_model: Any) -> QueryEncoder:
        """A trainable deep copy of the index's encoder (the index keeps the original)."""
        return cls(copy.deepcopy(encoder_model))

    @classmethod
    def load(cls, path: str | Path) -> QueryEncoder:
        from sentence_transformers import SentenceTransformer

        from mixrag.progress import quiet_progress

        try:
            with quiet_progress():
                model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as e:  # the library raises many types for a bad folder
            raise MixragError(f"cannot load the trained query encoder from {path}: {e}") from e
        model.eval()
        return cls(model)

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    @property
    def fingerprint(self) -> str:
        """sha256 over the current weights (changes as training updates them)."""
        return weights_fingerprint(self.model)

    def embed(self, questions: Sequence[str]) -> torch.Tensor:
        """[B, D] unit-length q(x), differentiable (call under no_grad when not training)."""
        prep = getattr(self.model, "preprocess", None) or self.model.tokenize
        features = prep(list(questions))
        out = self.model(features)["sentence_embedding"]
        return torch.nn.functional.normalize(out, dim=-1)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The ``Encoder`` protocol: [N, D] float32 unit-length rows."""
        if len(texts) == 0:
            return np.zeros((0, int(self.model.get_embedding_dimension())), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                out = [self.embed(texts[i : i + 64]) for i in range(0, len(texts), 64)]
        finally:
            self.model.train(was_training)
        return np.ascontiguousarray(torch.cat(out).numpy(), dtype=np.float32)

    def save(self, path: str | Path) -> None:
        self.model.save(str(path))


def _decoder_layers(model: Any) -> list[torch.nn.Module]:
    base = model.get_decoder() if hasattr(model, "get_decoder") else model.model
    layers = getattr(base, "layers", None)
    if layers is None:
        raise MixragError(f"cannot find the decoder layers of {type(model).__name__}")
    return list(layers)


def prepare_generator(model: Any, config: TrainConfig) -> Any:
    """The model to train: LoRA-wrapped, partly or fully unfrozen, or frozen.

    Returns the model to pass to ``TransformersGenerator`` (a peft model for LoRA).
    """
    for p in model.parameters():
        p.requires_grad_(False)
    if not config.trains_generator:
        return model
    if config.generator_update == "lora":
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise MissingDependencyError("LoRA training needs peft: pip install peft") from None
        n_layers = len(_decoder_layers(model))
        top = None
        if config.train_layers is not None:
            # adapters in the top N layers only: backward stops below them
            top = list(range(max(0, n_layers - config.train_layers), n_layers))
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.lora_targets),
            layers_to_transform=top,
            task_type="CAUSAL_LM",
        )
        # peft initialises the adapters from torch's global generator (it takes no
        # torch.Generator): seeded inside a fork, so the same seed gives the same
        # adapters and the caller's random state is left alone
        with seeded(config.seed):
            return get_peft_model(model, lora)
    layers = _decoder_layers(model)
    trained = layers if config.train_layers is None else layers[-config.train_layers :]
    for layer in trained:
        for p in layer.parameters():
            p.requires_grad_(True)
    if config.train_layers is None:
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        norm = getattr(model.get_decoder(), "norm", None)
        if norm is not None:
            for p in norm.parameters():
                p.requires_grad_(True)
    return model


def trainable(model: Any) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
