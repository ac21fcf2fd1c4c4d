"""The generator's one frozen config: which model, its dtype, batching limits, prompt format.

Written as JSON next to every index/checkpoint/result (``to_dict``/``from_dict``) so a
run can be reproduced. Nothing here loads anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from mixrag.generator.prompts import DEFAULT_FEW_SHOT, DEFAULT_STYLE, STYLES, PromptFormat

DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda", "mps", "auto")

DEFAULT_MODEL = "qwen2.5-0.5b"


@dataclass(frozen=True)
class GeneratorConfig:
    """Configuration of a :class:`~mixrag.generator.hf.TransformersGenerator`.

    model:            a bundled model name ("smollm2-135m", "qwen2.5-0.5b"), a local
                      transformers folder, a local ``.gguf`` file, or a hub name (hub
                      only with network access).
    dtype:            weights/activations dtype; float32 gives exact log-probs on CPU;
                      bfloat16 is 2-3x faster on CPUs with AMX (docs/BENCHMARKS.md);
                      "auto" picks bfloat16 there and on CUDA GPUs that support it.
    device:           "cpu", "cuda" (or "cuda:N"), "mps", or "auto" (the first present).
                      A loaded generator's config holds the resolved device and dtype.
    max_new_tokens:   default answer length limit for decoding, in tokens.
    max_batch_tokens: padded tokens (rows x length) per forward pass when scoring;
                      bounds activation memory, larger is faster up to a point.
    max_batch_rows:   rows per forward pass when scoring, whatever their length.
    max_logit_bytes:  bytes of answer-position logits (rows x T x V x 4) per forward
                      pass; matters with a ~150k vocabulary.
    prompt_style:     one of ``prompts.STYLES`` ("plain" chat prompt or "short" answer
                      instruction).
    few_shot:         prepend the fixed hand-written examples as earlier chat turns.
    share_prefix:     run the token prefix common to all prompts of a batch once and
                      reuse its KV cache (system prompt, instruction, few-shot turns).
    shared_head:      keep the head of single-passage prompts (instruction, few-shot
                      turns) once for all rows of a batch instead of once per row
                      (the same numbers; fewer bytes copied and read a step; SDPA
                      models on CPU only: others copy it as before, and on an H200
                      it measured slower, bench/results/cuda_check-h200.json).
    group_prompts:    when one prompt is scored with several answers (RAG-Sequence
                      rescoring: every hypothesis under every passage), run the prompt
                      once and score all its answers from its KV cache.
    cache_dir:        where converted GGUF models are kept; None means ``$MIXRAG_CACHE``
                      or ``~/.cache/mixrag/models``.
    track_grad:       keep the autograd graph in ``logprobs`` (training the generator);
                      False runs under ``torch.inference_mode``.
    passage_cache_mb: memory for the passage KV cache (``generator.passage_cache``),
                      in MiB; 0 turns it off. Each single-passage prompt's head and
                      passage keys/values are computed once and reused by later
                      questions, exactly. Qwen2.5-0.5B holds ~24 kB a token in float32
                      (~3.6 MB a 100-word passage), so the default keeps ~550 passages.
    passage_cache_dtype: dtype passage blocks are kept in (None: the model's dtype).
    packed_weights:   on a CPU with native bfloat16 (AVX-512 BF16 or AMX), keep each
                      bfloat16 linear layer's weight also in oneDNN's packed layout
                      (``generator.packed_linear``): a warm ask 1.1-1.2x faster, the
                      same kernels, about the weights' size again in memory. Inference
                      only; training takes the plain path.
    """

    model: str = DEFAULT_MODEL
    dtype: str = "float32"
    device: str = "cpu"
    max_new_tokens: int = 32
    max_batch_tokens: int = 4096
    max_batch_rows: int = 64
    max_logit_bytes: int = 256 * 2**20
    prompt_style: str = DEFAULT_STYLE
    few_shot: bool = DEFAULT_FEW_SHOT
    share_prefix: bool = True
    shared_head: bool = True
    group_prompts: bool = True
    cache_dir: str | None = None
    track_grad: bool = False
    passage_cache_mb: int = 2048
    passage_cache_dtype: str | None = None
    packed_weights: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in (*DTYPES, "auto"):
            raise ValueError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}, auto")
        if self.device.split(":", 1)[0] not in DEVICES:
            raise ValueError(
                f"device {self.device!r} is not one of {', '.join(DEVICES)} (or cuda:N)"
            )
        if self.prompt_style not in STYLES:
            raise ValueError(
                f"prompt_style {self.prompt_style!r} is not one of {', '.join(STYLES)}"
            )
        for name in ("max_new_tokens", "max_batch_tokens", "max_batch_rows", "max_logit_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.passage_cache_mb, int) or self.passage_cache_mb < 0:
            raise ValueError(
                f"passage_cache_mb must be a non-negative integer (0 = off), "
                f"got {self.passage_cache_mb!r}"
            )
        if self.passage_cache_dtype is not None and self.passage_cache_dtype not in DTYPES:
            raise ValueError(
                f"passage_cache_dtype {self.passage_cache_dtype!r} is not None or one of "
                f"{', '.join(DTYPES)}"
            )
        if not self.model:
            raise ValueError("model must name a bundled model, a folder, a .gguf file or a hub id")

    @property
    def prompt_format(self) -> PromptFormat:
        """The prompt builder these settings select."""
        return PromptFormat(style=self.prompt_style, few_shot=self.few_shot)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo would be silent)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown GeneratorConfig keys {unknown}; accepted: {', '.join(sorted(known))}"
            )
        return cls(**data)
