"""TransformersGenerator: p_phi(y | x, z) from a transformers causal LM, scored and decoded.

This module loads the model and tokeniser and holds the public methods; the work is
split by concern:

* :mod:`~mixrag.generator.contexts`: what a batch can skip, i.e. the shared head's KV
  and each passage's KV from the :mod:`~mixrag.generator.passage_cache`;
* :mod:`~mixrag.generator.scoring`: ``logprobs``'s forward passes after those contexts;
* :mod:`~mixrag.generator.decode_state`: step-wise decoding (``start``/``advance``);
* :mod:`~mixrag.generator.kv`: KV tensors and the padded layout all of them share.

Prompts are tokenised by segment (:class:`~mixrag.generator.prompts.Prompt`: head,
passage, tail), whichever path runs them, so the cached and uncached paths feed the
model the same token ids. Results never depend on what an earlier call ran: the head
memo and the passage cache are keyed by token ids and weights, and hold the KV those
tokens give.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from mixrag.generator import packed_linear, shared_attention
from mixrag.generator.base import TokenLogprobs
from mixrag.generator.config import GeneratorConfig
from mixrag.generator.contexts import ContextBuilder, Encoded, Prepared, run_rows
from mixrag.generator.decode_state import HFDecodeState
from mixrag.generator.kv import Context, concat_rows
from mixrag.generator.kv_store import KVStore
from mixrag.generator.passage_cache import PassageCache
from mixrag.generator.scoring import Scorer
from mixrag.generator.tokenization import Tokenization, UsesTokenization, find_eos_ids

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from mixrag.types import Passage

logger = logging.getLogger(__name__)


class TransformersGenerator(UsesTokenization):
    """A :class:`~mixrag.generator.base.StepGenerator` over a transformers causal LM.

    The constructor is cheap; the model loads on first use or on :meth:`load`. A
    loaded ``model``/``tokenizer`` pair may be passed in to share one copy of the
    weights between generators with different settings.
    """

    def __init__(
        self,
        config: GeneratorConfig | None = None,
        *,
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        passage_cache: PassageCache | None = None,
    ) -> None:
        self.config = config or GeneratorConfig()
        if (model is None) != (tokenizer is None):
            raise ValueError("pass both model and tokenizer, or neither")
        self._model = model
        self._tokenizer = tokenizer
        if passage_cache is None and self.config.passage_cache_mb > 0:
            passage_cache = PassageCache(self.config.passage_cache_mb * 2**20)
        #: passage KV blocks (None: off). May be shared by generators over the same
        #: model: entries are keyed by the weights' fingerprint.
        self.passage_cache = passage_cache
        self._contexts: ContextBuilder | None = None
        self._kv_store: KVStore | None = None
        self._setup_done = False
        self._tok: Tokenization | None = None

    # ---------------------------------------------------------------- loading

    def load(self) -> TransformersGenerator:
        """Load the model now (converting a bundled GGUF on first use); returns self."""
        if self._model is None:
            from mixrag.generator.models import load, resolve_device, resolve_dtype

            device = resolve_device(self.config.device)
            dtype = resolve_dtype(self.config.dtype, device)
            self.config = dataclasses.replace(self.config, device=device, dtype=dtype)
            self._model, self._tokenizer = load(
                self.config.model, self.config.dtype, self.config.device, self.config.cache_dir
            )
        if not self._setup_done:
            self._setup()
        return self

    def _setup(self) -> None:
        model = self.model
        eos = find_eos_ids(self.tokenizer, model.config, getattr(model, "generation_config", None))
        self._tok = Tokenization(self.tokenizer, eos)
        self._pad_id = self._tok.pad_id
        cfg = self.config
        if cfg.packed_weights and model.device.type == "cpu":
            packed_linear.install(model, repack=False)
        self._contexts = ContextBuilder(
            self.model,
            self._run_rows,
            share_prefix=cfg.share_prefix,
            # on CPU only: measured slower on an H200, where a step is launch-bound
            shared_head=cfg.shared_head
            and self.model.device.type == "cpu"
            and shared_attention.install(self.model),
            cache=self.passage_cache,
            storage_dtype=getattr(torch, cfg.passage_cache_dtype)
            if cfg.passage_cache_dtype
            else None,
            max_batch_tokens=cfg.max_batch_tokens,
            max_batch_rows=cfg.max_batch_rows,
        )
        self._contexts.store = self._kv_store
        self._contexts.store_info = self._store_info()
        self._scorer = Scorer(self.model, self._pad_id, cfg, self.vocab_size)
        self._setup_done = True

    @property
    def model(self) -> PreTrainedModel:
        if self._model is None:
            self.load()
        assert self._model is not None
        return self._model

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        if self._tokenizer is None:
            self.load()
        assert self._tokenizer is not None
        return self._tokenizer

    def _ready(self) -> None:
        if not self._setup_done:
            self.load()

    # ---------------------------------------------------------------- helpers

    @property
    def vocab_size(self) -> int:
        """V: size of the next-token distribution (the model's output dimension)."""
        head = self.model.get_output_embeddings()
        if head is not None and hasattr(head, "weight"):
            return int(head.weight.shape[0])
        return int(self.model.config.get_text_config().vocab_size)

    @property
    def tokenization(self) -> Tokenization:
        """The prompt and answer ids this generator feeds its model."""
        self._ready()
        assert self._tok is not None
        return self._tok

    def _encode(self, prompt: str) -> Encoded:
        return self.tokenization.encode(prompt)

    def _grad_context(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext() if self.config.track_grad else torch.inference_mode()

    # ---------------------------------------------------------------- contexts

    def _run_rows(
        self, context: Context, rests: Sequence[Sequence[int]], width: int
    ) -> tuple[Context, torch.Tensor]:
        return run_rows(self.model, self._pad_id, context, rests, width)

    def _prepare(self, encoded: Sequence[Encoded]) -> Prepared:
        assert self._contexts is not None
        return self._contexts.prepare(encoded, keep=not self.config.track_grad)

    def _prefix_cacheable(self) -> bool:
        assert self._contexts is not None
        return self._contexts.cacheable

    def warm(
        self,
        passages: Sequence[Passage],
        *,
        batch: int = 32,
        concat: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Compute the passage KV blocks of ``passages`` ahead of any question.

        Uses the generator's prompt format; ``batch`` passages per call, and
        ``on_batch(n)`` after each with the number done. ``concat`` also computes each
        passage's block as concat's first passage (its head and ``[1] z``,
        :func:`~mixrag.generator.prompts.concat_lead`): a second block per passage, in
        its own space, read by concat prompts that rank the passage first. Returns how
        many blocks were computed (the others were cached already). Raises ValueError
        when the passage cache is off.
        """
        if self.passage_cache is None:
            raise ValueError("the passage cache is off (passage_cache_mb=0): nothing to warm")
        self._ready()
        assert self._contexts is not None
        kinds = ("passage", "concat") if concat else ("passage",)
        computed = 0
        with torch.inference_mode():
            for lo in range(0, len(passages), batch):
                part = passages[lo : lo + batch]
                for kind in kinds:
                    rows = [self._block_row(kind, p) for p in part]
                    computed += self._contexts.ensure_blocks(rows)
                if on_batch is not None:
                    on_batch(lo + len(part))
        return computed

    def kv_spaces(self) -> dict[str, str]:
        """The KV store's space names of this generator's prompts: ``{"passage": name,
        "concat": name}`` (RAG-Sequence / RAG-Token's passage prompt, concat's lead)."""
        from mixrag.generator.kv_store import space_name
        from mixrag.types import Passage

        self._ready()
        assert self._contexts is not None
        probe = Passage(id="probe", doc_id="probe", title="", text="probe")
        fp = self._contexts.fingerprint()
        spaces = {}
        for kind in ("passage", "concat"):
            row = self._block_row(kind, probe)
            spaces[kind] = space_name(fp, row.ids[: row.head])
        return spaces

    def _block_row(self, kind: str, passage: Passage) -> Encoded:
        """A prompt whose passage segment is ``passage``'s block of ``kind``: the passage
        prompt (RAG-Sequence, RAG-Token) or concat's with it first; "?" as the question."""
        from mixrag.generator.prompts import mark_concat

        fmt = self.config.prompt_format
        if kind == "passage":
            return self._encode(self.render(fmt.passage("?", passage), passage=passage))
        messages = fmt.concat("?", [passage])
        return self._encode(mark_concat(self.render(messages), messages, [passage]))

    def use_kv_store(self, store: KVStore | None) -> None:
        """Keep passage blocks on disk in ``store`` too (read and filled); None stops it.

        Cheap: the model is not loaded here.
        """
        if store is not None and self.passage_cache is None:
            raise ValueError("the passage cache is off (passage_cache_mb=0): nothing to store")
        self._kv_store = store
        if self._contexts is not None:
            self._contexts.store = store
            self._contexts.store_info = self._store_info()

    def _store_info(self) -> dict[str, Any]:
        cfg = self.config
        return {"model": cfg.model, "dtype": cfg.dtype, "device": cfg.device}

    @property
    def kv_store(self) -> KVStore | None:
        return self._kv_store

    def weights_fingerprint(self) -> str:
        """The content hash of the current weights that keys the passage cache."""
        self._ready()
        assert self._contexts is not None
        return self._contexts.fingerprint()

    # ---------------------------------------------------------------- scoring

    def logprobs(
        self,
        prompts: Sequence[Sequence[str]],
        answers: Sequence[Sequence[int]],
        *,
        smoothing: bool = False,
    ) -> TokenLogprobs:
        """log p_phi(y_b,i | x_b, z_b,j, y_b,<i) as ``TokenLogprobs`` [B, K, T] (float32).

        Lewis et al. (2020) §2.3: the per-token generator term that both RAG-Sequence
        and RAG-Token combine with the retriever prior. 0.0 on padded answer positions.
        ``smoothing`` also returns the mean log-probability over the vocabulary at each
        answer position (``TokenLogprobs.smooth``), for label-smoothed training.
        """
        b_count = len(prompts)
        if len(answers) != b_count:
            raise ValueError(f"got {b_count} prompt lists but {len(answers)} answers")
        k = len(prompts[0]) if b_count else 0
        if any(len(p) != k for p in prompts):
            raise ValueError(
                f"every question needs the same number of prompts; got {[len(p) for p in prompts]}"
            )
        if b_count and k == 0:
            raise ValueError("each question needs at least one prompt (K >= 1)")
        t = max((len(a) for a in answers), default=0)
        mask = torch.zeros(b_count, t, dtype=torch.bool)
        for b, a in enumerate(answers):
            mask[b, : len(a)] = True
        out = torch.zeros(b_count, k, t, dtype=torch.float32)
        smooth = torch.zeros(b_count, k, t, dtype=torch.float32) if smoothing else None
        if t == 0:
            return TokenLogprobs(out, mask, smooth)
        self._ready()
        groups: dict[str, list[tuple[int, int]]] = {}
        for b in range(b_count):
            if answers[b]:
                for j in range(k):
                    groups.setdefault(prompts[b][j], []).append((b, j))
        if not groups:
            return TokenLogprobs(out, mask, smooth)
        distinct = list(groups)
        row_of = {p: i for i, p in enumerate(distinct)}
        with self._grad_context():
            prepared = self._prepare([self._encode(p) for p in distinct])
            grouping = self.config.group_prompts and self._prefix_cacheable()
            self._scorer.score(prepared, row_of, groups, prompts, answers, out, smooth, grouping)
        return TokenLogprobs(out, mask, smooth)

    # ---------------------------------------------------------------- decoding

    def start(self, prompts: Sequence[str]) -> HFDecodeState:
        """Run the N prompts (left-padded to one length) and return their decode state.

        Rows go through the model in chunks of at most ``max_batch_tokens`` padded
        tokens / ``max_batch_rows`` rows (bounding activation memory for wide beams);
        the chunks' caches share one layout, so they are concatenated into one.
        """
        if not prompts:
            raise ValueError("start needs at least one prompt")
        self._ready()
        encoded = [self._encode(p) for p in prompts]
        if any(not e.ids for e in encoded):
            raise ValueError("a prompt tokenised to nothing; render it first")
        with self._grad_context():
            prepared = self._prepare(encoded)
            rests = prepared.rests
            n, r_max = len(rests), max(len(r) for r in rests)
            width = prepared.width(range(n))
            per_chunk = max(
                1, min(self.config.max_batch_rows, self.config.max_batch_tokens // r_max)
            )
            if not self._prefix_cacheable():
                per_chunk = n  # other cache kinds cannot be concatenated row-wise
            contexts, logprobs = [], []
            for lo in range(0, n, per_chunk):
                index = list(range(lo, min(n, lo + per_chunk)))
                # every chunk padded to the same widths, so their caches line up
                after, last = self._run_rows(
                    prepared.build(index, width), [rests[i] for i in index], r_max
                )
                contexts.append(after)
                logprobs.append(torch.log_softmax(last, dim=-1))
            config = self.model.config
            if len(contexts) == 1:
                cache = contexts[0].cache(config)
            else:
                cache = concat_rows([c.cache(config) for c in contexts], config)
        return HFDecodeState(
            self.model,
            self._grad_context,
            cache,
            torch.cat([c.attn for c in contexts]),
            torch.cat([c.next_pos for c in contexts]),
            torch.cat(logprobs),
            shared=contexts[0].shared_head,  # one head for every chunk (one ``prepared``)
        )
