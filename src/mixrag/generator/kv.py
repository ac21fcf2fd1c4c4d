"""Key/value caches as plain tensors, and the padded layout that runs tokens after them.

A *context* is what precedes a row's next tokens, already run through the model: per
layer its keys and values ``[rows, heads, S, d]``, an attention mask ``[rows, S]`` (0
on padding) and the position the row's next token takes. Contexts are built from a
shared head (chat header, instruction, few-shot turns) and, per row, a passage block
from the passage cache; scoring and decoding then run only the rest of each prompt.

Layout of a batch after a context of width S (columns):

    [context: head | left pad | passage] [left pad | rest of prompt] [y_0 .. y_{T-2}] [pad]

Padding is masked and position ids count real tokens only, so a padded row gives the
numbers the row gives alone (tests/generator).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mixrag.generator.shared_attention import SHARED_KV

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values), each [rows, heads, S, d]


def layers_of(cache: Any) -> KV:
    """The (keys, values) per layer of a transformers ``DynamicCache``."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def make_cache(data: KV | None, model_config: Any) -> Any:
    """A transformers ``DynamicCache`` holding ``data`` (empty when None), without a copy.

    ``DynamicCache(ddp_cache_data=...)`` fills each layer through ``update``, which
    concatenates onto an empty tensor: a copy of every key and value. The layers here
    take the tensors as they are (views included), which is safe because a
    ``DynamicLayer`` never writes into its tensors: ``update`` and ``reorder_cache``
    make new ones. A server's merged decode state was rebuilt this way on every join
    and trim: 11% of its engine thread's time under load (DESIGN "Caches are built
    without a copy").
    """
    from transformers import DynamicCache
    from transformers.cache_utils import CacheLayerMixin, DynamicLayer

    cache = DynamicCache(config=model_config)
    if not data:
        return cache
    if len(cache.layers) != len(data):
        raise ValueError(f"the model has {len(cache.layers)} layers, the data {len(data)}")
    for layer, (keys, values) in zip(cache.layers, data, strict=True):
        if type(layer) is DynamicLayer:
            layer.lazy_initialization(keys, values)
            layer.keys, layer.values = keys, values
        elif isinstance(layer, CacheLayerMixin):  # a sliding window keeps only its window
            layer.update(keys, values)
        else:
            raise ValueError(f"cannot fill a {type(layer).__name__} with keys and values")
    return cache


def concat_rows(caches: Sequence[Any], model_config: Any) -> Any:
    """One cache with the rows of ``caches`` (same layout and width) one after another."""
    layers = zip(*(c.layers for c in caches), strict=True)
    data = [(torch.cat([x.keys for x in ls]), torch.cat([x.values for x in ls])) for ls in layers]
    return make_cache(data, model_config)


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass(frozen=True)
class Context:
    """Tokens already run, per row: ``layers`` [R, heads, S, d], ``attn`` [R, S], ``next_pos`` [R].

    R may be 1 for a context every row shares (``take`` broadcasts it). S may be 0
    (nothing run yet: ``layers`` is empty). ``shared_head``, when set, is a head of H columns
    that precedes every row's S columns, kept once ([1, heads, H, d] per layer; see
    :mod:`mixrag.generator.shared_attention`): positions continue after it and ``attn``
    covers only the rows' own columns.
    """

    layers: KV
    attn: torch.Tensor
    next_pos: torch.Tensor
    shared_head: KV | None = None

    @property
    def width(self) -> int:
        return int(self.attn.shape[1])

    @property
    def rows(self) -> int:
        return int(self.attn.shape[0])

    @staticmethod
    def empty(rows: int, device: torch.device | str) -> Context:
        return Context(
            [],
            torch.zeros(rows, 0, dtype=torch.long, device=device),
            torch.zeros(rows, dtype=torch.long, device=device),
        )

    @staticmethod
    def shared(kv: KV | None, length: int, device: torch.device | str) -> Context:
        """A one-row context holding ``length`` real tokens (``kv`` [1, heads, length, d])."""
        if not kv or length == 0:
            return Context.empty(1, device)
        return Context(
            kv,
            torch.ones(1, length, dtype=torch.long, device=device),
            torch.full((1,), length, dtype=torch.long, device=device),
        )

    @staticmethod
    def after_head(kv: KV, length: int, rows: int, device: torch.device | str) -> Context:
        """``rows`` rows with nothing of their own yet after a shared head (``kv``, ``length``)."""
        return Context(
            [],
            torch.zeros(rows, 0, dtype=torch.long, device=device),
            torch.full((rows,), length, dtype=torch.long, device=device),
            kv,
        )

    def take(self, index: Sequence[int] | torch.Tensor) -> Context:
        """The context of rows ``index`` (a shared one-row context is expanded, not copied)."""
        idx = torch.as_tensor(index, dtype=torch.long, device=self.attn.device)
        n = int(idx.numel())
        head = self.shared_head
        if self.rows == 1:
            # expand is a view; the cache's first update concatenates it into real rows
            layers = [(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in self.layers]
            return Context(layers, self.attn.expand(n, -1), self.next_pos.expand(n), head)
        layers = [(k.index_select(0, idx), v.index_select(0, idx)) for k, v in self.layers]
        attn, next_pos = self.attn.index_select(0, idx), self.next_pos.index_select(0, idx)
        return Context(layers, attn, next_pos, head)

    def cache(self, model_config: Any) -> Any:
        """A fresh ``DynamicCache`` over the rows' own tensors (the model appends to a copy)."""
        return make_cache(self.layers, model_config)

    def forward_kwargs(self, model_config: Any) -> dict[str, Any]:
        """What a forward pass after this context takes: its cache and the shared head."""
        kwargs: dict[str, Any] = {"cache": self.cache(model_config)}
        if self.shared_head is not None:
            kwargs[SHARED_KV] = self.shared_head
        return kwargs

    @property
    def empty_before(self) -> bool:
        """Whether nothing at all precedes the rows (no columns, no shared head)."""
        return self.width == 0 and self.shared_head is None


def layout(
    context: Context, rows: Sequence[tuple[int, Sequence[int]]], length: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token rows placed in one padded block of ``length`` columns after ``context``.

    ``rows`` holds (first column, tokens) per row, one per context row. Returns input
    ids [n, length] (``pad_id`` elsewhere), the attention mask [n, S + length] (context
    and tokens) and position ids [n, length] that continue each row's context and count
    real tokens only, so padding does not shift a row's rotary positions.
    """
    n = len(rows)
    device = context.attn.device
    input_ids = torch.full((n, length), pad_id, dtype=torch.long)
    block = torch.zeros(n, length, dtype=torch.long)
    for i, (begin, seq) in enumerate(rows):
        input_ids[i, begin : begin + len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        block[i, begin : begin + len(seq)] = 1
    block = block.to(device)
    attn = torch.cat([context.attn, block], dim=1)
    position_ids = context.next_pos[:, None] + (block.cumsum(-1) - 1).clamp(min=0)
    return input_ids.to(device), attn, position_ids


def expand_shared(shared: KV, layers: KV, attn: torch.Tensor) -> tuple[KV, torch.Tensor]:
    """Rows after a shared head as rows that hold it: per layer [n, heads, H + S, d]
    (the head copied into every row) and the mask [n, H + S] (the head's columns on)."""
    n = int(attn.shape[0])
    h = int(shared[0][0].shape[2])
    full: KV = []
    for i, (hk, hv) in enumerate(shared):
        if layers:
            k, v = layers[i]
            full.append(
                (
                    torch.cat([hk.expand(n, -1, -1, -1).to(k), k], dim=2),
                    torch.cat([hv.expand(n, -1, -1, -1).to(v), v], dim=2),
                )
            )
        else:
            full.append((hk.expand(n, -1, -1, -1).clone(), hv.expand(n, -1, -1, -1).clone()))
    mask = torch.cat([attn.new_ones(n, h), attn], dim=1)
    return full, mask
