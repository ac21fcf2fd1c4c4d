"""Attention over a head every row shares, kept once instead of once per row.

Every single-passage prompt starts with the same head (chat header, instruction,
few-shot turns: ~310 of a RAG prompt's ~440 columns with the default format). Stored
in each row's KV cache, the head is copied whenever a decode step re-orders the rows
or appends a token, and read once per row. Kept once, it costs one matrix product per
layer for all rows. Attention over the concatenation [head | row's own columns] is a
softmax over both score sets together, so splitting the keys changes no result:

    a_r = softmax([q_r·K_headᵀ, q_r·K_rᵀ] · scale + [0, mask_r]) · [V_head; V_r]

(the scores, softmax and weighted sums run in float32). The head's keys carry their
rotary positions 0..H-1 and the rows' columns continue from H, exactly as in the
unsplit cache. A row's mask covers only its own columns: nothing in the head is
padding.

``install(model)`` registers :func:`shared_prefix_attention` with transformers as an
attention implementation that falls back to PyTorch's SDPA whenever a call carries no
shared head (``SHARED_KV`` keyword), so every other path runs as before.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)

#: the forward keyword that carries the shared head: per layer (keys, values) [1, kv heads, H, d]
SHARED_KV = "mixrag_shared_kv"
NAME = "mixrag_shared_sdpa"


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
    b, hq, t, d = query.shape
    hkv, s, h = key.shape[1], key.shape[2], head_k.shape[2]
    rep = hq // hkv
    scale = d**-0.5 if scaling is None else scaling
    # query heads g*rep .. g*rep+rep-1 read kv head g: [B, Hkv, rep*T, d]
    q = query.reshape(b, hkv, rep * t, d).float() * scale
    # the head: one product per kv head for every row's queries, [Hkv, B*rep*T, H]
    q_by_head = q.transpose(0, 1).reshape(hkv, b * rep * t, d)
    scores_head = torch.bmm(q_by_head, head_k[0].float().transpose(1, 2))
    scores_head = scores_head.view(hkv, b, rep * t, h).transpose(0, 1)  # [B, Hkv, rep*T, H]
    scores_own = torch.matmul(q, key.float().transpose(-1, -2)).view(b, hkv, rep, t, s)
    if attention_mask is None:
        if t > 1:  # causal within the rows' columns: query i sees columns <= S - T + i
            cols = torch.arange(s, device=query.device)
            rows = torch.arange(t, device=query.device) + (s - t)
            scores_own = scores_own.masked_fill(cols[None, :] > rows[:, None], float("-inf"))
    elif attention_mask.dtype == torch.bool:
        scores_own = scores_own.masked_fill(~attention_mask[:, :, None], float("-inf"))
    else:
        scores_own = scores_own + attention_mask[:, :, None].float()
    scores = torch.cat([scores_head, scores_own.view(b, hkv, rep * t, s)], dim=-1)
    weights = torch.softmax(scores, dim=-1)  # [B, Hkv, rep*T, H + S]
    w_head = weights[..., :h].transpose(0, 1).reshape(hkv, b * rep * t, h)
    out = torch.bmm(w_head, head_v[0].float()).view(hkv, b, rep * t, d).transpose(0, 1)
    out = out + torch.matmul(weights[..., h:], value.float())  # [B, Hkv, rep*T, d]
    out = out.reshape(b, hq, t, d).transpose(1, 2).contiguous()
    return out.to(query.dtype), None


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
