"""TransformersGenerator: p_phi(y | x, z) from a transformers causal LM, scored and decoded.

Scoring (``logprobs``) runs all B*K (prompt, answer) pairs as few padded forward
passes as the token budget allows. Each row is laid out as

    [shared prefix P (cached)] [left pad] [prompt rest] [y_0 .. y_{T-2}] [right pad]

so that every row's answer starts at the same column: the logits that predict
y_0..y_{T-1} are then exactly the last T columns (``logits_to_keep=T``), and the
vocabulary projection and log-softmax run only there, never over the prompt (with a
150k vocabulary that projection would otherwise cost as much as several layers).
Padding is masked out and position ids count real tokens only, so a padded row gives
the same numbers as the row alone (checked in tests/generator).

The token prefix common to every prompt of a call (chat header, instruction,
few-shot turns) is run once and its KV cache reused for all rows; the last one is
kept across calls, cropped to what consecutive calls share, so the few-shot
examples cost nothing after the first call.

When a prompt comes with several answers (RAG-Sequence's thorough rescoring scores
every hypothesis under every passage), scoring runs in two passes instead: each
distinct prompt once (its last position predicts y_0), then every answer's
y_0..y_{T-2} on a copy of its prompt's KV cache. A passage prompt is ~30x longer than
an answer, so U answers per prompt cost about one prompt instead of U.

Decoding (``start``/``advance``) keeps a transformers ``DynamicCache`` with the same
layout (prefix, left pad, prompt) and appends one token per row per step;
``advance(rows=...)`` re-orders/duplicates cache rows for beam search.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from mixrag.generator.base import TokenLogprobs
from mixrag.generator.config import GeneratorConfig
from mixrag.generator.prompts import Message, clean_answer, is_finished

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values), each [rows, heads, S, d]

# Shorter shared prefixes are not worth a separate forward pass.
_MIN_PREFIX = 8
# End-of-turn markers of common chat formats, added to the model's own EOS ids.
_END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>")


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _layers(cache: Any) -> KV:
    return [(layer.keys, layer.values) for layer in cache.layers]


@dataclass(frozen=True)
class _PromptKV:
    """KV caches of prompts run once, ready to score any answer after them.

    rows: prompt text -> row; layers: per layer (keys, values) [U, heads, S, d];
    attn: [U, S] attention mask; next_pos: [U] position of the first answer token;
    first: [U, V] log-distribution of the first answer token.
    """

    rows: dict[str, int]
    layers: KV
    attn: torch.Tensor
    next_pos: torch.Tensor
    first: torch.Tensor


class TransformersGenerator:
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
    ) -> None:
        self.config = config or GeneratorConfig()
        if (model is None) != (tokenizer is None):
            raise ValueError("pass both model and tokenizer, or neither")
        self._model = model
        self._tokenizer = tokenizer
        self._prefix: tuple[tuple[int, ...], KV] | None = None
        # the prompts of the last ``start``, before any answer token: decoding then
        # scoring the same prompts (RAG-Sequence rescoring, posteriors) runs them once
        self._last_start: _PromptKV | None = None
        self._setup_done = False

    # ---------------------------------------------------------------- loading

    def load(self) -> TransformersGenerator:
        """Load the model now (converting a bundled GGUF on first use); returns self."""
        if self._model is None:
            from mixrag.generator.models import load

            self._model, self._tokenizer = load(
                self.config.model, self.config.dtype, self.config.device, self.config.cache_dir
            )
        if not self._setup_done:
            self._setup()
        return self

    def _setup(self) -> None:
        tok = self.tokenizer
        self._has_template = bool(getattr(tok, "chat_template", None))
        bos = tok.bos_token_id
        # A rendered chat string already holds its special tokens (its template adds
        # BOS where the model wants one), so it is tokenised without adding any; a
        # plain string gets the BOS the tokenizer would add by itself.
        adds_bos = bos is not None and tok("a").input_ids[:1] == [bos]
        self._bos: list[int] = [bos] if (adds_bos and not self._has_template) else []
        # A base model's answer follows "Answer:" after a space; a chat answer starts the turn.
        self._answer_prefix = "" if self._has_template else " "
        self._eos_ids = self._find_eos_ids()
        pad = tok.pad_token_id
        self._pad_id: int = int(
            pad if pad is not None else (self._eos_ids[0] if self._eos_ids else 0)
        )
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
    def eos_ids(self) -> tuple[int, ...]:
        """Token ids that end an answer: the model's EOS ids and chat end-of-turn markers."""
        self._ready()
        return self._eos_ids

    @property
    def end_id(self) -> int:
        """The token that ends an answer y when it is scored or trained on."""
        tok = self.tokenizer
        return int(tok.eos_token_id if tok.eos_token_id is not None else self.eos_ids[0])

    def _find_eos_ids(self) -> tuple[int, ...]:
        ids: set[int] = set()
        for source in (self.model.config, getattr(self.model, "generation_config", None)):
            value = getattr(source, "eos_token_id", None) if source is not None else None
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        # Only added (special) tokens: "</s>" is an ordinary BPE token in some vocabularies.
        added = self.tokenizer.get_added_vocab()
        ids.update(int(added[t]) for t in _END_TOKENS if t in added)
        return tuple(sorted(ids))

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt string for chat ``messages``, ready for the assistant's answer.

        Uses the model's chat template (generation prompt added) when it has one;
        otherwise a plain "...\\nAnswer:" layout for base models.
        """
        self._ready()
        if self._has_template:
            text = self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
            assert isinstance(text, str)
            return text
        parts = []
        for m in messages:
            if m["role"] == "system":
                parts.append(m["content"] + "\n\n")
            elif m["role"] == "user":
                parts.append(m["content"] + "\nAnswer:")
            else:
                parts.append(" " + m["content"] + "\n\n")
        if not messages or messages[-1]["role"] != "user":
            parts.append("Answer:")
        return "".join(parts)

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of a rendered prompt, exactly as scoring and decoding feed them."""
        self._ready()
        return self._bos + list(self.tokenizer(prompt, add_special_tokens=False).input_ids)

    def encode_answer(self, text: str) -> list[int]:
        """Token ids of answer ``text`` as it continues a rendered prompt (no special tokens)."""
        self._ready()
        ids = self.tokenizer(self._answer_prefix + text, add_special_tokens=False).input_ids
        return list(ids)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of answer token ids, special tokens dropped."""
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True)).lstrip(" ")

    def _grad_context(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext() if self.config.track_grad else torch.inference_mode()

    # ---------------------------------------------------------------- shared prefix

    def _run_prefix(self, ids: Sequence[int], base: KV | None) -> KV:
        """KV of ``ids`` (batch 1), continuing ``base`` (the KV of the tokens before) if given."""
        from transformers import DynamicCache

        start = base[0][0].shape[2] if base else 0
        cache = DynamicCache(ddp_cache_data=base, config=self.model.config) if base else None
        device = self.model.device
        out = self.model(
            input_ids=torch.tensor([list(ids)], device=device),
            attention_mask=torch.ones(1, start + len(ids), dtype=torch.long, device=device),
            position_ids=torch.arange(start, start + len(ids), device=device)[None],
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return _layers(out.cache)

    def _prefix_cacheable(self) -> bool:
        # Only plain full-attention layers can be cut and stitched back; sliding-window
        # or recurrent caches keep state that a prefix copy would not reproduce.
        types = getattr(self.model.config.get_text_config(), "layer_types", None)
        return types is None or all(t == "full_attention" for t in types)

    def _shared_prefix(self, rows: Sequence[Sequence[int]]) -> tuple[int, KV | None]:
        """(P, KV of the first P tokens) shared by every row; (0, None) when not worth it.

        P leaves at least one token of every prompt outside the prefix: the last prompt
        position's logits predict y_0 and must be computed per row.
        """
        if not self.config.share_prefix or not rows or not self._prefix_cacheable():
            return 0, None
        first = rows[0]
        p = min(len(r) for r in rows) - 1
        for r in rows[1:]:
            p = min(p, _common_prefix_len(first, r))
        if p < _MIN_PREFIX:
            return 0, None
        keep = not self.config.track_grad  # inference tensors cannot enter autograd later
        cached = self._prefix
        if cached is not None:
            ids, kv = cached
            shared = _common_prefix_len(ids, first[:p])
            if shared >= _MIN_PREFIX:
                if shared < len(ids):
                    # Keep only what consecutive calls share (causal: the KV of a prefix
                    # does not depend on what follows, so cropping is exact).
                    kv = [(k[:, :, :shared], v[:, :, :shared]) for k, v in kv]
                    self._prefix = (ids[:shared], kv)
                if shared == p:
                    return p, kv
                return p, self._run_prefix(first[shared:p], kv)
        kv = self._run_prefix(first[:p], None)
        if keep:
            self._prefix = (tuple(first[:p]), kv)
        return p, kv

    def _row_cache(self, kv: KV | None, n: int) -> Any:
        if kv is None:
            return None
        from transformers import DynamicCache

        # expand is a view; the cache's first update concatenates it into real rows.
        data = [(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in kv]
        return DynamicCache(ddp_cache_data=data, config=self.model.config)

    # ---------------------------------------------------------------- scoring

    def logprobs(
        self,
        prompts: Sequence[Sequence[str]],
        answers: Sequence[Sequence[int]],
        *,
        smoothing: bool = False,
    ) -> TokenLogprobs:
        """log p_phi(y_b,i | x_b, z_b,j, y_b,<i) as ``TokenLogprobs`` [B, K, T] (float32).

        Lewis et al. (2020) §2.2: the per-token generator term that both RAG-Sequence
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
        encoded: dict[str, list[int]] = {}
        for row in prompts:
            for p in row:
                if p not in encoded:
                    encoded[p] = self.encode_prompt(p)
        cells = [(b, j) for b in range(b_count) if answers[b] for j in range(k)]
        groups: dict[str, list[tuple[int, int]]] = {}
        for b, j in cells:
            groups.setdefault(prompts[b][j], []).append((b, j))
        with self._grad_context():
            memo = self._last_start
            if smooth is None and memo is not None and all(p in memo.rows for p in groups):
                self._score_answers(memo, groups, answers, out)
                return TokenLogprobs(out, mask)
            p_len, kv = self._shared_prefix([encoded[prompts[b][j]] for b, j in cells])
            grouping = self.config.group_prompts and smooth is None
            if grouping and len(groups) < len(cells) and self._prefix_cacheable():
                self._score_grouped(groups, encoded, answers, p_len, kv, out)
                return TokenLogprobs(out, mask)
            # Longest first: similar lengths share a chunk, so little padding.
            cells.sort(
                key=lambda c: len(encoded[prompts[c[0]][c[1]]]) + len(answers[c[0]]), reverse=True
            )
            for chunk in self._chunks(cells, encoded, prompts, answers, p_len):
                rests = [encoded[prompts[b][j]][p_len:] for b, j in chunk]
                ys = [list(answers[b]) for b, _j in chunk]
                lp, mean_lp = self._score_rows(rests, ys, p_len, kv, smoothing)  # [n, Tc]
                for r, (b, j) in enumerate(chunk):
                    out[b, j, : lp.shape[1]] = lp[r].to(torch.float32)
                    if smooth is not None and mean_lp is not None:
                        smooth[b, j, : lp.shape[1]] = mean_lp[r].to(torch.float32)
        return TokenLogprobs(out, mask, smooth)

    def _chunks(
        self,
        cells: list[tuple[int, int]],
        encoded: dict[str, list[int]],
        prompts: Sequence[Sequence[str]],
        answers: Sequence[Sequence[int]],
        p_len: int,
    ) -> Iterator[list[tuple[int, int]]]:
        cfg = self.config
        v = self.vocab_size
        chunk: list[tuple[int, int]] = []
        rest_max = ans_max = 0
        for b, j in cells:
            rest = len(encoded[prompts[b][j]]) - p_len
            new_rest, new_ans = max(rest_max, rest), max(ans_max, len(answers[b]))
            n = len(chunk) + 1
            tokens = n * (new_rest + new_ans - 1)
            logit_bytes = n * new_ans * v * 4
            if chunk and (
                n > cfg.max_batch_rows
                or tokens > cfg.max_batch_tokens
                or logit_bytes > cfg.max_logit_bytes
            ):
                yield chunk
                chunk, new_rest, new_ans = [], rest, len(answers[b])
            chunk.append((b, j))
            rest_max, ans_max = new_rest, new_ans
        if chunk:
            yield chunk

    def _score_rows(
        self,
        rests: list[list[int]],
        ys: list[list[int]],
        p_len: int,
        kv: KV | None,
        smoothing: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[n, Tc] log p(y_i | prefix + rest, y_<i) for n rows in one forward pass.

        With ``smoothing`` also [n, Tc] (1/V) Σ_v log p(v | prefix + rest, y_<i), else None.
        """
        device = self.model.device
        n = len(rests)
        r_max = max(len(r) for r in rests)
        t_max = max(len(y) for y in ys)
        # every prompt rest ends at column r_max; the last answer token is a target
        # only (nothing is predicted after it)
        input_ids, attn, position_ids = self._layout(
            [(r_max - len(rest), rest + y[:-1]) for rest, y in zip(rests, ys, strict=True)],
            p_len,
            r_max + t_max - 1,
        )
        targets = torch.full((n, t_max), self._pad_id, dtype=torch.long)
        y_mask = torch.zeros(n, t_max, dtype=torch.bool)
        for i, y in enumerate(ys):
            targets[i, : len(y)] = torch.tensor(y)
            y_mask[i, : len(y)] = True
        out = self.model(
            input_ids=input_ids.to(device),
            attention_mask=attn.to(device),
            position_ids=position_ids.to(device),
            cache=self._row_cache(kv, n),
            use_cache=kv is not None,
            logits_to_keep=t_max,
        )
        logits = out.logits[:, -t_max:].float()  # [n, Tc, V]: columns r_max-1 .. length-1
        targets = targets.to(device)
        # log_softmax at the target only: gather - logsumexp, no [n, Tc, V] log-prob copy
        lse = logits.logsumexp(-1)
        lp = logits.gather(-1, targets[..., None]).squeeze(-1) - lse
        pad = ~y_mask.to(device)
        mean_lp = (logits.mean(-1) - lse).masked_fill(pad, 0.0).cpu() if smoothing else None
        return lp.masked_fill(pad, 0.0).cpu(), mean_lp

    def _score_grouped(
        self,
        groups: dict[str, list[tuple[int, int]]],
        encoded: dict[str, list[int]],
        answers: Sequence[Sequence[int]],
        p_len: int,
        kv: KV | None,
        out: torch.Tensor,
    ) -> None:
        """Fill ``out[b, j]`` running each distinct prompt once, then its answers on its cache."""
        cfg = self.config
        order = sorted(groups, key=lambda p: len(encoded[p]), reverse=True)
        chunk: list[str] = []
        r_max = 0
        for p in [*order, None]:
            if p is not None:
                new_r = max(r_max, len(encoded[p]) - p_len)
                n = len(chunk) + 1
                if not chunk or (n <= cfg.max_batch_rows and n * new_r <= cfg.max_batch_tokens):
                    chunk.append(p)
                    r_max = new_r
                    continue
            rests = [encoded[q][p_len:] for q in chunk]
            out_p, attn, pos = self._prompt_pass(rests, p_len, self._row_cache(kv, len(rests)))
            first = torch.log_softmax(out_p.logits[:, -1].float(), dim=-1)  # [U, V]: y_0
            rows = {q: u for u, q in enumerate(chunk)}
            prompt_kv = _PromptKV(rows, _layers(out_p.cache), attn, pos, first)
            self._score_answers(prompt_kv, {q: groups[q] for q in chunk}, answers, out)
            if p is not None:
                chunk, r_max = [p], len(encoded[p]) - p_len

    def _score_answers(
        self,
        prompt_kv: _PromptKV,
        groups: dict[str, list[tuple[int, int]]],
        answers: Sequence[Sequence[int]],
        out: torch.Tensor,
    ) -> None:
        """Fill ``out[b, j]`` for the cells of ``groups`` from their prompts' caches."""
        cfg = self.config
        rows = [(prompt_kv.rows[q], b, j) for q, cells in groups.items() for b, j in cells]
        for u, b, j in rows:
            out[b, j, 0] = prompt_kv.first[u, answers[b][0]].to(torch.float32)
        rest = [(u, b, j) for u, b, j in rows if len(answers[b]) > 1]
        # KV tokens held per forward: rows x (prefix + prompt + answer)
        longest = max((len(answers[b]) for _u, b, _j in rest), default=0)
        per_row = prompt_kv.attn.shape[1] + longest
        span = max(1, min(cfg.max_batch_rows, 4 * cfg.max_batch_tokens // per_row))
        for lo in range(0, len(rest), span):
            part = rest[lo : lo + span]
            lp = self._score_continuations(
                prompt_kv, [u for u, _b, _j in part], [answers[b] for _u, b, _j in part]
            )
            for r, (_u, b, j) in enumerate(part):
                n_lp = len(answers[b]) - 1
                out[b, j, 1 : 1 + n_lp] = lp[r, :n_lp].to(torch.float32)

    def _score_continuations(
        self, prompt_kv: _PromptKV, src: list[int], ys: list[Sequence[int]]
    ) -> torch.Tensor:
        """[n, T-1] log p(y_i | prompt src[r], y_<i) for i >= 1, on copies of the prompt cache."""
        from transformers import DynamicCache

        device = self.model.device
        n, t_in = len(ys), max(len(y) for y in ys) - 1
        index = torch.tensor(src, dtype=torch.long, device=device)
        data = [(k.index_select(0, index), v.index_select(0, index)) for k, v in prompt_kv.layers]
        cache = DynamicCache(ddp_cache_data=data, config=self.model.config)
        input_ids = torch.full((n, t_in), self._pad_id, dtype=torch.long)
        targets = torch.full((n, t_in), self._pad_id, dtype=torch.long)
        y_mask = torch.zeros(n, t_in, dtype=torch.bool)
        for i, y in enumerate(ys):
            # right-padded: y_0..y_{T-2} in, y_1..y_{T-1} predicted
            input_ids[i, : len(y) - 1] = torch.tensor(list(y[:-1]))
            targets[i, : len(y) - 1] = torch.tensor(list(y[1:]))
            y_mask[i, : len(y) - 1] = True
        prompt_attn = prompt_kv.attn.index_select(0, index)
        attn = torch.cat([prompt_attn, y_mask.long().to(device)], dim=1)
        steps = torch.arange(t_in, device=device)
        position_ids = prompt_kv.next_pos.index_select(0, index)[:, None] + steps
        out = self.model(
            input_ids=input_ids.to(device),
            attention_mask=attn,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
            logits_to_keep=t_in,
        )
        logits = out.logits[:, -t_in:].float()
        targets = targets.to(device)
        lp = logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(-1)
        return lp.masked_fill(~y_mask.to(device), 0.0).cpu()

    def _layout(
        self, rows: Sequence[tuple[int, Sequence[int]]], p_len: int, length: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token rows placed in one padded batch after a cached prefix of ``p_len`` tokens.

        ``rows`` holds (first column, tokens) per row. Returns input ids [n, length]
        (pad elsewhere), the attention mask [n, p_len + length] (prefix and tokens) and
        position ids [n, length] that count real tokens only, so padding before a row
        does not shift its rotary positions.
        """
        n = len(rows)
        input_ids = torch.full((n, length), self._pad_id, dtype=torch.long)
        attn = torch.zeros(n, p_len + length, dtype=torch.long)
        attn[:, :p_len] = 1
        for i, (begin, seq) in enumerate(rows):
            input_ids[i, begin : begin + len(seq)] = torch.tensor(list(seq), dtype=torch.long)
            attn[i, p_len + begin : p_len + begin + len(seq)] = 1
        position_ids = p_len + (attn[:, p_len:].cumsum(-1) - 1).clamp(min=0)
        return input_ids, attn, position_ids

    def _prompt_pass(
        self, rests: Sequence[Sequence[int]], p_len: int, cache: Any, width: int = 0
    ) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """Run prompt rests, left-padded to ``width`` or the longest, after the cached prefix.

        ``cache`` holds the prefix's KV per row, or is None when there is no prefix.

        Returns (model output with the KV cache and the last position's logits,
        attention mask [n, p_len + r_max] on the model's device, next position ids [n]).
        """
        from transformers import DynamicCache

        device = self.model.device
        r_max = max(width, *(len(r) for r in rests))
        input_ids, attn, position_ids = self._layout(
            [(r_max - len(rest), list(rest)) for rest in rests], p_len, r_max
        )
        out = self.model(
            input_ids=input_ids.to(device),
            attention_mask=attn.to(device),
            position_ids=position_ids.to(device),
            cache=cache if cache is not None else DynamicCache(config=self.model.config),
            use_cache=True,
            logits_to_keep=1,
        )
        return out, attn.to(device), position_ids[:, -1].to(device) + 1

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
        ids = [self.encode_prompt(p) for p in prompts]
        if any(not i for i in ids):
            raise ValueError("a prompt tokenised to nothing; render it first")
        with self._grad_context():
            p_len, kv = self._shared_prefix(ids)
            rests = [i[p_len:] for i in ids]
            n, r_max = len(rests), max(len(r) for r in rests)
            per_chunk = max(
                1, min(self.config.max_batch_rows, self.config.max_batch_tokens // r_max)
            )
            if not self._prefix_cacheable():
                per_chunk = n  # other cache kinds cannot be concatenated row-wise
            caches, logprobs, attns, positions = [], [], [], []
            for lo in range(0, n, per_chunk):
                chunk = rests[lo : lo + per_chunk]
                # every chunk padded to the same width, so their caches line up
                chunk_out, attn, pos = self._prompt_pass(
                    chunk, p_len, self._row_cache(kv, len(chunk)), width=r_max
                )
                caches.append(chunk_out.cache)
                logprobs.append(torch.log_softmax(chunk_out.logits[:, -1].float(), dim=-1))
                attns.append(attn)
                positions.append(pos)
            cache = caches[0] if len(caches) == 1 else self._concat_caches(caches)
        state = HFDecodeState(
            self, cache, torch.cat(attns), torch.cat(positions), torch.cat(logprobs)
        )
        self._last_start = None
        if self.config.group_prompts and self._prefix_cacheable() and not self.config.track_grad:
            # the cache's tensors are replaced, never written in place, as decoding goes on
            rows: dict[str, int] = {}
            for r, prompt in enumerate(prompts):
                rows.setdefault(prompt, r)
            self._last_start = _PromptKV(
                rows, _layers(cache), state._attn, state._pos, state.logprobs()
            )
        return state

    def _concat_caches(self, caches: list[Any]) -> Any:
        from transformers import DynamicCache

        layers = zip(*(c.layers for c in caches), strict=True)
        data = [
            (torch.cat([x.keys for x in ls]), torch.cat([x.values for x in ls])) for ls in layers
        ]
        return DynamicCache(ddp_cache_data=data, config=self.model.config)

    def generate_ids(
        self,
        prompts: Sequence[str],
        max_new_tokens: int | None = None,
        stop_at_newline: bool = True,
    ) -> list[list[int]]:
        """Greedy answer token ids per prompt, without the stop token.

        Stops a row at an EOS/end-of-turn id, or (``stop_at_newline``) once its text
        holds a newline; finished rows leave the batch so later steps get cheaper.
        """
        limit = self.config.max_new_tokens if max_new_tokens is None else max_new_tokens
        eos = torch.tensor(self.eos_ids, dtype=torch.long)
        results: list[list[int]] = [[] for _ in prompts]
        if not prompts or limit <= 0:
            return results
        state = self.start(prompts)
        active = list(range(len(prompts)))  # state row r continues prompt active[r]
        for step in range(limit):
            tokens = state.logprobs().argmax(-1).cpu()
            keep: list[int] = []
            for r, idx in enumerate(active):
                tok = int(tokens[r])
                if bool((eos == tok).any()):
                    continue
                results[idx].append(tok)
                if stop_at_newline and is_finished(self.decode(results[idx])):
                    continue
                keep.append(r)
            if not keep or step == limit - 1:
                break
            rows = None if len(keep) == len(active) else torch.tensor(keep, dtype=torch.long)
            state.advance(tokens[keep] if rows is not None else tokens, rows)
            active = [active[r] for r in keep]
        return results

    def generate(self, prompts: Sequence[str], max_new_tokens: int | None = None) -> list[str]:
        """Greedy answers, cut at EOS/newline and cleaned with ``prompts.clean_answer``."""
        return [
            clean_answer(self.decode(ids)) for ids in self.generate_ids(prompts, max_new_tokens)
        ]


class HFDecodeState:
    """N rows mid-decoding: KV cache, attention mask [N, S], next position ids [N]."""

    def __init__(
        self,
        generator: TransformersGenerator,
        cache: Any,
        attention_mask: torch.Tensor,
        next_positions: torch.Tensor,
        logprobs: torch.Tensor,
    ) -> None:
        self._gen = generator
        self._cache = cache
        self._attn = attention_mask
        self._pos = next_positions
        self._logprobs = logprobs

    @property
    def num_rows(self) -> int:
        return int(self._attn.shape[0])

    def logprobs(self) -> torch.Tensor:
        """[N, V] float32 log-distribution of every row's next token."""
        return self._logprobs

    def advance(self, tokens: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """Append ``tokens`` [N'] after re-ordering rows (new row r continues old ``rows[r]``)."""
        model = self._gen.model
        device = self._attn.device
        if rows is not None:
            rows = torch.as_tensor(rows, dtype=torch.long, device=device)
            if rows.ndim != 1 or (rows.numel() and (rows.min() < 0 or rows.max() >= self.num_rows)):
                raise ValueError(
                    f"rows must be a 1-D index into 0..{self.num_rows - 1}, got {rows.tolist()}"
                )
            self._cache.reorder_cache(rows)
            self._attn = self._attn.index_select(0, rows)
            self._pos = self._pos.index_select(0, rows)
        tokens = torch.as_tensor(tokens, dtype=torch.long, device=device)
        if tokens.shape != (self.num_rows,):
            raise ValueError(
                f"need one token per row ({self.num_rows}), got shape {tuple(tokens.shape)}"
            )
        self._attn = torch.cat([self._attn, self._attn.new_ones(self.num_rows, 1)], dim=1)
        with self._gen._grad_context():
            out = model(
                input_ids=tokens[:, None],
                attention_mask=self._attn,
                position_ids=self._pos[:, None],
                cache=self._cache,
                use_cache=True,
                logits_to_keep=1,
            )
            self._cache = out.cache
            self._logprobs = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        self._pos = self._pos + 1
