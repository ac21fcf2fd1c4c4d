"""Attention over a head every row shares, kept once instead of once per row.

Every single-passage prompt starts with the same head (chat header, instruction,
few-shot turns: ~310 of a RAG prompt's ~440 columns with the default format). Stored
in each row's KV cache, the head is copied whenever a decode step re-orders the rows
or appends a token, and read once per row. Kept once, it costs one matrix product per
layer for all rows. Attention over the concatenation [head | row's own columns] is a
softmax over both score sets together, so splitting the keys changes no result:

    a_r = softmax([q_r·K_headᵀ, q_r·K_rᵀ] · scale + [0, mask_r]) · [V_head; V_r]

On CPU this runs as two calls of PyTorch's flash kernel (every row's queries against
the head in one call, each row against its own columns in another) merged by their
log-sum-exps; elsewhere as float32 products with one softmax. The head's keys carry their
rotary positions 0..H-1 and the rows' columns continue from H, exactly as in the
unsplit cache. A row's mask covers only its own columns: nothing in the head is
padding.

``install(model)`` registers :func:`shared_prefix_attention` with transformers as an
attention implementation that falls back to PyTorch's SDPA whenever a call carries no
shared head (``SHARED_KV`` keyword), so every other path runs as before.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import torch

logger = logging.getLogger(__name__)

#: the forward keyword that carries the shared head: per layer (keys, values) [1, kv heads, H, d]
SHARED_KV = "mixrag_shared_kv"
NAME = "mixrag_shared_sdpa"
# PyTorch's CPU flash-attention kernel, which also returns each query's log-sum-exp
_FLASH = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def shared_prefix_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention signature: query [B, Hq, T, d], key/value [B, Hkv, S, d]
    (the rows' own columns, after the shared head), mask [B, 1, T, S] (bool: attend;
    float: additive) or None (causal). Returns ([B, T, Hq, d], None)."""
    shared = kwargs.pop(SHARED_KV, None)
    if shared is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if dropout and module.training:
        raise ValueError(f"shared-head attention has no dropout (got {dropout})")
    head_k, head_v = shared[module.layer_idx]  # [1, Hkv, H, d]
    # A head kept in another dtype than this pass computes in (a float32 head read under
    # bfloat16 autocast, as a frozen generator's training pass does) joins in the pass's.
    head_k, head_v = head_k.to(query.dtype), head_v.to(query.dtype)
    key, value = key.to(query.dtype), value.to(query.dtype)
    if query.device.type == "cpu" and _FLASH is not None:
        out = _split_flash(query, key, value, attention_mask, head_k, head_v, scaling)
    else:
        out = _split_math(query, key, value, attention_mask, head_k, head_v, scaling)
    return out, None


def _own_mask(
    mask: torch.Tensor | None, b: int, rep: int, t: int, s: int, device: torch.device
) -> torch.Tensor | None:
    """The rows' mask [B, 1, rep*T, S] (query heads packed by kv head), boolean (attend)
    or additive as given, or None when every query sees every column."""
    if mask is None:
        if t == 1:
            return None
        cols = torch.arange(s, device=device)
        last = torch.arange(t, device=device) + (s - t)  # query i sees columns <= S - T + i
        mask = (cols[None, :] <= last[:, None]).expand(b, 1, t, s)
    return mask[:, :, None].expand(b, 1, rep, t, s).reshape(b, 1, rep * t, s)


_memo = threading.local()  # the last mask's flash form: every layer of a pass gets the same


def _flash_mask(
    mask: torch.Tensor | None, b: int, rep: int, t: int, s: int, query: torch.Tensor
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The rows' mask as the flash kernel's additive one [B, 1, rep*T, S] and which
    queries see any column at all [B, 1, rep*T]; (None, None) when nothing is masked."""
    last = getattr(_memo, "last", None)
    if last is not None and last[0] is mask and last[1] == (b, rep, t, s, query.dtype):
        return last[2], last[3]
    own = _own_mask(mask, b, rep, t, s, query.device)
    additive = sees = None
    if own is not None and own.dtype == torch.bool:
        additive = torch.zeros(own.shape, dtype=query.dtype, device=query.device)
        additive = additive.masked_fill(~own, float("-inf"))
        sees = own.any(dim=-1)
    elif own is not None:
        additive = own.to(query.dtype)
        sees = (additive > float("-inf")).any(dim=-1)
    _memo.last = (mask, (b, rep, t, s, query.dtype), additive, sees)
    return additive, sees


def _split_flash(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    head_k: torch.Tensor,
    head_v: torch.Tensor,
    scaling: float | None,
) -> torch.Tensor:
    """PyTorch's CPU flash kernel twice, merged by log-sum-exp:

        a = (e^{l_h} a_h + e^{l_o} a_o) / (e^{l_h} + e^{l_o})

    with a_h, l_h the attention output and log-sum-exp of the scores over the head (every
    row's queries in one call) and a_o, l_o over the rows' own columns."""
    assert _FLASH is not None
    b, hq, t, d = query.shape
    hkv, s = key.shape[1], key.shape[2]
    rep = hq // hkv
    q = query.reshape(b, hkv, rep * t, d)  # query heads g*rep .. g*rep+rep-1 read kv head g
    q_all = q.transpose(0, 1).reshape(1, hkv, b * rep * t, d)
    out_h, lse_h = _FLASH(q_all, head_k, head_v, scale=scaling)
    out_h = out_h.reshape(hkv, b, rep * t, d).transpose(0, 1)  # [B, Hkv, rep*T, d]
    lse_h = lse_h.reshape(hkv, b, rep * t).transpose(0, 1)
    additive, sees = _flash_mask(mask, b, rep, t, s, query)
    out_o, lse_o = _FLASH(q, key, value, attn_mask=additive, scale=scaling)
    if sees is not None:  # a query that sees none of its row's columns reads the head only
        lse_o = lse_o.float().masked_fill(~sees, float("-inf"))
        out_o = out_o.masked_fill(~sees[..., None], 0.0)
    lse = torch.logaddexp(lse_h.float(), lse_o.float())
    w_h = torch.exp(lse_h - lse)[..., None]
    w_o = torch.exp(lse_o - lse)[..., None]
    out = out_h.float() * w_h + out_o.float() * w_o
    return out.reshape(b, hq, t, d).transpose(1, 2).to(query.dtype).contiguous()


def _split_math(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    head_k: torch.Tensor,
    head_v: torch.Tensor,
    scaling: float | None,
) -> torch.Tensor:
    """The same in plain float32 products (any device): one softmax over both score sets."""
    b, hq, t, d = query.shape
    hkv, s, h = key.shape[1], key.shape[2], head_k.shape[2]
    rep = hq // hkv
    scale = d**-0.5 if scaling is None else scaling
    q = query.reshape(b, hkv, rep * t, d).float() * scale
    q_by_head = q.transpose(0, 1).reshape(hkv, b * rep * t, d)  # every row's queries at once
    scores_head = torch.bmm(q_by_head, head_k[0].float().transpose(1, 2))
    scores_head = scores_head.view(hkv, b, rep * t, h).transpose(0, 1)  # [B, Hkv, rep*T, H]
    scores_own = torch.matmul(q, key.float().transpose(-1, -2))  # [B, Hkv, rep*T, S]
    own = _own_mask(mask, b, rep, t, s, query.device)
    if own is not None and own.dtype == torch.bool:
        scores_own = scores_own.masked_fill(~own, float("-inf"))
    elif own is not None:
        scores_own = scores_own + own.float()
    weights = torch.softmax(torch.cat([scores_head, scores_own], dim=-1), dim=-1)
    w_head = weights[..., :h].transpose(0, 1).reshape(hkv, b * rep * t, h)
    out = torch.bmm(w_head, head_v[0].float()).view(hkv, b, rep * t, d).transpose(0, 1)
    out = out + torch.matmul(weights[..., h:], value.float())  # [B, Hkv, rep*T, d]
    return out.reshape(b, hq, t, d).transpose(1, 2).to(query.dtype).contiguous()


def install(model: Any) -> bool:
    """Let ``model`` take a shared head (``SHARED_KV``); True when it can.

    Only a model on PyTorch's SDPA (transformers' default on CPU) switches: the new
    implementation is SDPA itself for every call without a shared head.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    config = model.config
    current = getattr(config, "_attn_implementation", None)
    if current == NAME:
        return True
    if current != "sdpa":
        logger.info("attention is %r, not sdpa: rows keep their own copy of the head", current)
        return False
    AttentionInterface.register(NAME, shared_prefix_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return getattr(model.config, "_attn_implementation", None) == NAME


def accepts_shared(model: Any) -> bool:
    """Whether ``model`` runs :func:`shared_prefix_attention` (see :func:`install`)."""
    return getattr(model.config, "_attn_implementation", None) == NAME
