"""HFDecodeState: N rows mid-decoding on a transformers KV cache, one token per step.

``TransformersGenerator.start`` builds it after running the prompts; decoders
(:mod:`mixrag.decoding`) read ``logprobs()`` and call ``advance``, which appends one
token per row, after re-ordering or duplicating rows for beam search.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.nn.functional as F

from mixrag.generator.kv import KV, expand_shared, layers_of
from mixrag.generator.shared_attention import SHARED_KV


class HFDecodeState:
    """N rows mid-decoding: KV cache, attention mask [N, S], next position ids [N].

    ``shared``: a head every row continues, kept once (:class:`~mixrag.generator.kv.Context`);
    the cache and the mask then hold only the rows' own columns.
    """

    def __init__(
        self,
        model: Any,
        grad_context: Callable[[], AbstractContextManager[Any]],
        cache: Any,
        attention_mask: torch.Tensor,
        next_positions: torch.Tensor,
        logprobs: torch.Tensor,
        shared: KV | None = None,
    ) -> None:
        self._model = model
        self._shared = shared
        self._grad_context = grad_context  # no_grad, or enable_grad when training
        self._cache = _for_decoding(cache)
        self._attn = attention_mask
        self._pos = next_positions
        self._logprobs = logprobs

    @property
    def num_rows(self) -> int:
        return int(self._attn.shape[0])

    @property
    def shares_head(self) -> bool:
        """Whether the rows continue one head kept once (not copied into each row)."""
        return self._shared is not None

    def same_head(self, other: HFDecodeState) -> bool:
        """Whether ``other``'s rows continue the same head as these (kept once for both,
        or neither keeps one), so :meth:`extend` merges them without copying a head."""
        return self._shared is other._shared and self._model is other._model

    def logprobs(self) -> torch.Tensor:
        """[N, V] float32 log-distribution of every row's next token."""
        return self._logprobs

    def advance(self, tokens: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """Append ``tokens`` [N'] after re-ordering rows (new row r continues old ``rows[r]``)."""
        model = self._model
        device = self._attn.device
        if rows is not None:
            rows = torch.as_tensor(rows, dtype=torch.long, device=device)
            if rows.ndim != 1 or (rows.numel() and (rows.min() < 0 or rows.max() >= self.num_rows)):
                raise ValueError(
                    f"rows must be a 1-D index into 0..{self.num_rows - 1}, got {rows.tolist()}"
                )
            if not _is_identity(rows, self.num_rows):  # a re-order copies the whole KV
                self._cache.reorder_cache(rows)
                self._attn = self._attn.index_select(0, rows)
                self._pos = self._pos.index_select(0, rows)
        tokens = torch.as_tensor(tokens, dtype=torch.long, device=device)
        if tokens.shape != (self.num_rows,):
            raise ValueError(
                f"need one token per row ({self.num_rows}), got shape {tuple(tokens.shape)}"
            )
        self._attn = torch.cat([self._attn, self._attn.new_ones(self.num_rows, 1)], dim=1)
        with self._grad_context():
            out = model(
                input_ids=tokens[:, None],
                attention_mask=self._attn,
                position_ids=self._pos[:, None],
                cache=self._cache,
                use_cache=True,
                logits_to_keep=1,
                **({} if self._shared is None else {SHARED_KV: self._shared}),
            )
            self._cache = out.cache
            self._logprobs = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
        self._pos = self._pos + 1

    def extend(self, other: HFDecodeState) -> None:
        """Append ``other``'s rows after this state's (continuous batching).

        The narrower of the two is left-padded to the wider's width: padding is masked
        and position ids are explicit, so every row's next distributions are the ones it
        gives alone. Both states must run the same model.
        """
        if other._model is not self._model:
            raise ValueError("cannot merge decode states of two different models")
        if self._shared is not other._shared:  # two heads: each row keeps its own copy
            self._unshare()
            other._unshare()
        from mixrag.generator.slack_cache import SLACK, decoding_cache

        width = max(self._attn.shape[1], other._attn.shape[1])
        buffers = [
            (_stack_padded(k0, k1, width, SLACK), _stack_padded(v0, v1, width, SLACK))
            for (k0, v0), (k1, v1) in zip(
                layers_of(self._cache), layers_of(other._cache), strict=True
            )
        ]
        layers = [(k[:, :, :width], v[:, :, :width]) for k, v in buffers]
        self._cache = decoding_cache(layers, self._model.config, buffers)
        self._attn = torch.cat([_left_pad(self._attn, width), _left_pad(other._attn, width)])
        self._pos = torch.cat([self._pos, other._pos])
        self._logprobs = torch.cat([self._logprobs, other._logprobs])

    def _unshare(self) -> None:
        """Copy the shared head into every row (when merging with rows of another head)."""
        if self._shared is None:
            return
        layers, self._attn = expand_shared(self._shared, layers_of(self._cache), self._attn)
        self._cache = _decoding_cache(layers, self._model.config)
        self._shared = None

    def trim(self) -> int:
        """Drop the leading columns no row attends to (left after rows were dropped);
        returns how many. The cache keeps views of the same buffers (no copy)."""
        from mixrag.generator.slack_cache import trimmed

        used = self._attn.any(dim=0).nonzero()
        cut = int(used[0]) if used.numel() else int(self._attn.shape[1])
        if cut:
            self._cache = trimmed(self._cache, cut, self._model.config)
            self._attn = self._attn[:, cut:]
        return cut


def _for_decoding(cache: Any) -> Any:
    from mixrag.generator.slack_cache import for_decoding

    return for_decoding(cache)


def _decoding_cache(data: KV, model_config: Any) -> Any:
    from mixrag.generator.slack_cache import decoding_cache

    return decoding_cache(data, model_config)


def _left_pad(x: torch.Tensor, width: int) -> torch.Tensor:
    """[N, S] mask left-padded with zeros to [N, width]."""
    return F.pad(x, (width - x.shape[1], 0))


def _stack_padded(a: torch.Tensor, b: torch.Tensor, width: int, room: int = 0) -> torch.Tensor:
    """[Na + Nb, H, width + room, d]: the rows of ``a`` then ``b`` [N, H, S, d], each
    left-padded with zeros to ``width`` columns, in one copy (padding then concatenating
    took two; the zeros keep masked columns finite: a NaN there would survive a weight
    of 0), then ``room`` unset spare columns for a :class:`SlackLayer` to append into."""
    out = a.new_empty((a.shape[0] + b.shape[0], a.shape[1], width + room, a.shape[3]))
    for rows, x in ((out[: a.shape[0]], a), (out[a.shape[0] :], b)):
        pad = width - x.shape[2]
        rows[:, :, :pad].zero_()
        rows[:, :, pad:width].copy_(x)
    return out


def _is_identity(rows: torch.Tensor, n: int) -> bool:
    """Whether ``rows`` keeps all n rows in order (nothing to copy)."""
    return rows.numel() == n and bool((rows == torch.arange(n, device=rows.device)).all())
