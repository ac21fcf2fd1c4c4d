"""Decode-state caches that append a step's keys and values in place.

transformers' ``DynamicLayer.update`` concatenates, so every decoding step copies the
whole cache to add one column; in the server's merged decode state (tens of rows, as
wide as its widest row) that copy is paid on every step. A :class:`SlackLayer` keeps
its keys and values as the leading columns of buffers it allocated with ``SLACK``
spare columns and writes each step into the next free ones.

Safety: a layer writes only into buffers it allocated itself, and only past the columns
of every view it has handed out, so tensors it was given (cached passage blocks,
expanded views of a shared context) and views taken earlier never change. A re-order
gathers whole buffers, spare columns included (one copy, as before). With gradients
enabled it concatenates like its parent, so autograd sees every write.

Imported only where a model runs (it imports transformers).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicLayer

from mixrag.generator.kv import KV, layers_of, make_cache

SLACK = 32  # spare columns: a 32-token answer appends without a copy


class SlackLayer(DynamicLayer):
    """A ``DynamicLayer`` whose ``update`` appends into spare columns (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        #: (keys, values) buffers this layer allocated; keys/values are their first columns
        self.buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def _room(self, n: int) -> bool:
        """Whether the keys are the buffers' leading columns with ``n`` more free."""
        k = self.keys
        if self.buffers is None or k is None:
            return False
        kb = self.buffers[0]
        return (
            k.data_ptr() == kb.data_ptr()
            and k.shape[0] == kb.shape[0]
            and k.stride() == kb.stride()
            and k.shape[2] + n <= kb.shape[2]
        )

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if torch.is_grad_enabled():
            self.buffers = None
            return super().update(key_states, value_states, *args, **kwargs)
        keys, values = self.keys, self.values
        assert keys is not None and values is not None  # initialized above
        n = int(key_states.shape[-2])
        length = int(keys.shape[-2]) if keys.dim() == 4 else 0
        if not self._room(n):
            size = length + n + SLACK
            kb = key_states.new_empty((*key_states.shape[:2], size, key_states.shape[3]))
            vb = value_states.new_empty((*value_states.shape[:2], size, value_states.shape[3]))
            if length:
                kb[:, :, :length].copy_(keys)
                vb[:, :, :length].copy_(values)
            self.buffers = (kb, vb)
        kb, vb = self.buffers  # type: ignore[misc]
        kb[:, :, length : length + n].copy_(key_states)
        vb[:, :, length : length + n].copy_(value_states)
        self.keys, self.values = kb[:, :, : length + n], vb[:, :, : length + n]
        return self.keys, self.values

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.buffers is None or self.keys is None or not self._room(0):
            self.buffers = None
            super().reorder_cache(beam_idx)
            return
        length = int(self.keys.shape[-2])
        idx = beam_idx.to(self.keys.device)
        kb, vb = (b.index_select(0, idx) for b in self.buffers)
        self.buffers = (kb, vb)
        self.keys, self.values = kb[:, :, :length], vb[:, :, :length]


def decoding_cache(data: KV, model_config: Any, buffers: KV | None = None) -> Any:
    """A ``DynamicCache`` holding ``data`` (no copy: :func:`~mixrag.generator.kv.make_cache`),
    its layers :class:`SlackLayer` where the model's are plain ``DynamicLayer``.

    ``buffers``, when given, are per layer the (keys, values) tensors that ``data`` are
    the leading columns of, with spare columns after them: the layers adopt them, so the
    first step appends without a copy too.
    """
    if buffers is not None and len(buffers) != len(data):
        raise ValueError(f"{len(data)} layers of data but {len(buffers)} of buffers")
    return _slacken(make_cache(data, model_config), buffers)


def for_decoding(cache: Any) -> Any:
    """``cache`` with its layers as :class:`SlackLayer` (no copy) when they are all filled
    plain ``DynamicLayer`` (or already slack); any other cache kind as it is."""
    return _slacken(cache, None)


def _slacken(cache: Any, buffers: KV | None) -> Any:
    """Swap ``cache``'s filled plain ``DynamicLayer``s for :class:`SlackLayer`s holding the
    same tensors (adopting ``buffers``); a cache with any other kind of layer as it is."""
    if not all(type(layer) is DynamicLayer and layer.is_initialized for layer in cache.layers):
        return cache
    layers = []
    for i, (keys, values) in enumerate(layers_of(cache)):
        layer = SlackLayer()
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values
        if buffers is not None:
            layer.buffers = buffers[i]
        layers.append(layer)
    cache.layers = layers
    return cache


def trimmed(cache: Any, cut: int, model_config: Any) -> Any:
    """A decoding cache of ``cache``'s columns from ``cut`` on (views, no copy); a slack
    layer's buffers come along, so the next step still appends in place."""
    data: KV = []
    buffers: KV = []
    for layer in cache.layers:
        data.append((layer.keys[:, :, cut:], layer.values[:, :, cut:]))
        room = isinstance(layer, SlackLayer) and layer.buffers is not None and layer._room(0)
        if room:
            kb, vb = layer.buffers
            buffers.append((kb[:, :, cut:], vb[:, :, cut:]))
    return decoding_cache(data, model_config, buffers if len(buffers) == len(data) else None)
