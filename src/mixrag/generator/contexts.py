"""What a batch of prompts can skip: the shared head's KV and each passage's cached KV.

:class:`ContextBuilder` turns tokenised prompts into :class:`Prepared` rows: for each
row the tokens still to run (``rests``) and a way to build the KV :class:`Context`
that precedes them for any subset of rows. Two layouts:

* **passage** (single-passage prompts, :class:`~mixrag.generator.prompts.Prompt`,
  with the passage cache on): context = the head's KV (kept once) followed by the
  row's passage block from the :class:`~mixrag.generator.passage_cache.PassageCache`,
  computed now on a miss; the rest is the question tail.
* **prefix** (anything else): context = the longest token prefix every row shares
  (chat header, instruction, few-shot turns), run once and kept across calls, cropped
  to what consecutive calls share (causal attention: the KV of a prefix does not depend
  on what follows, so cropping is exact); the rest is everything after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from mixrag.generator.kv import KV, Context, common_prefix_len, expand_shared, layers_of, layout
from mixrag.generator.kv_store import KVStore, space_name
from mixrag.generator.passage_cache import PassageCache, WeightsFingerprint, entry_key
from mixrag.generator.shared_attention import accepts_shared
from mixrag.generator.tokenization import Encoded

logger = logging.getLogger(__name__)

# Shorter shared prefixes are not worth a separate forward pass.
MIN_PREFIX = 8
#: prefixes the head memo keeps (a passage head, the closed-book prompt, ...)
PREFIX_MEMO = 4


@dataclass(frozen=True)
class Prepared:
    """Rows ready to run: ``rests[i]`` are row i's tokens after its context.

    ``head`` is the shared head's KV ([1, heads, H, d]) or None; ``blocks[i]`` row i's
    passage block ([layers, 2, heads, S_i, d]), or ``blocks`` is None (prefix layout).
    With ``share_head`` the contexts of the passage layout keep the head once
    (``Context.shared_head``) instead of copying it into every row.
    """

    rests: list[list[int]]
    head: KV | None
    head_len: int
    blocks: list[torch.Tensor] | None
    dtype: torch.dtype
    device: torch.device
    share_head: bool = False

    def width(self, index: Sequence[int]) -> int:
        """Context width (columns) that rows ``index`` need."""
        if self.blocks is None:
            return self.head_len
        return self.head_len + max(int(self.blocks[i].shape[3]) for i in index)

    def build(self, index: Sequence[int], width: int | None = None) -> Context:
        """The context of rows ``index``, ``width`` columns wide (at least ``width(index)``)."""
        if self.blocks is None:
            return Context.shared(self.head, self.head_len, self.device).take(list(index))
        need = self.width(index)
        width = need if width is None else width
        if width < need:
            raise ValueError(f"context width {width} is below the {need} columns rows need")
        span = width - self.head_len
        n = len(index)
        sizes = [int(self.blocks[i].shape[3]) for i in index]
        # left-pad every block to `span` columns: [n, layers, 2, heads, span, d]
        padded = torch.stack(
            [F.pad(self.blocks[i], (0, 0, span - s, 0)) for i, s in zip(index, sizes, strict=True)]
        ).to(self.dtype)
        next_pos = torch.tensor([self.head_len + s for s in sizes], dtype=torch.long)
        own = torch.zeros(n, span, dtype=torch.long)
        for r, s in enumerate(sizes):
            own[r, span - s :] = 1
        layers: KV = [(padded[:, i, 0], padded[:, i, 1]) for i in range(padded.shape[1])]
        if self.head is not None and self.share_head:
            return Context(layers, own.to(self.device), next_pos.to(self.device), self.head)
        attn = own
        if self.head is not None:
            layers, attn = expand_shared(self.head, layers, own)
        return Context(layers, attn.to(self.device), next_pos.to(self.device))


class ContextBuilder:
    """Builds contexts for a generator's model; owns the head memo and the passage cache.

    ``run`` runs token rows after a context, as :func:`run_rows` does. ``storage_dtype`` is
    the dtype passage blocks are kept in (None: the model's).
    """

    def __init__(
        self,
        model: Any,
        run: Callable[[Context, Sequence[Sequence[int]], int], tuple[Context, torch.Tensor]],
        *,
        share_prefix: bool,
        shared_head: bool = False,
        cache: PassageCache | None,
        storage_dtype: torch.dtype | None,
        max_batch_tokens: int,
        max_batch_rows: int,
    ) -> None:
        self.model = model
        self._run = run
        self.share_prefix = share_prefix
        #: keep the passage layout's head once for all rows (the model runs
        #: :mod:`~mixrag.generator.shared_attention`)
        self.shared_head = shared_head and accepts_shared(model)
        self.cache = cache
        self.storage_dtype = storage_dtype
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_rows = max_batch_rows
        self.fingerprint = WeightsFingerprint(model)
        #: blocks on disk beside an index (:mod:`mixrag.generator.kv_store`), or None
        self.store: KVStore | None = None
        #: what a new space's manifest records (model name, dtype, ...)
        self.store_info: dict[str, Any] = {}
        #: most recent first: (token ids, their KV), at most PREFIX_MEMO entries
        self._prefixes: list[tuple[tuple[int, ...], KV]] = []
        self._prefix_stamp: tuple[tuple[int, int], ...] = ()

    @property
    def cacheable(self) -> bool:
        """Only plain full-attention layers can be cut and stitched back together.

        Sliding-window or recurrent caches keep state that a copied prefix would not reproduce.
        """
        types = getattr(self.model.config.get_text_config(), "layer_types", None)
        return types is None or all(t == "full_attention" for t in types)

    # ------------------------------------------------------------------ entry point

    def prepare(self, rows: Sequence[Encoded], *, keep: bool = True) -> Prepared:
        """Contexts for ``rows``: the passage layout where it applies, else the prefix one.

        ``keep`` False (training with gradients) keeps nothing across calls and never
        uses the passage cache: inference tensors cannot enter autograd later.
        """
        device = self.model.device
        dtype = self.model.dtype
        if keep and self._passage_layout_applies(rows):
            head_ids = tuple(rows[0].ids[: rows[0].head])
            head = self._prefix_kv(head_ids, keep=True)
            blocks = self._blocks(head_ids, head, rows)[0]
            rests = [list(r.ids[r.cached :]) for r in rows]
            share = self.shared_head
            return Prepared(rests, head, len(head_ids), blocks, dtype, device, share)
        p, kv = self._shared_prefix(
            [r.ids for r in rows], keep=keep, head=rows[0].head if len(rows) == 1 else 0
        )
        return Prepared([list(r.ids[p:]) for r in rows], kv, p, None, dtype, device)

    def ensure_blocks(self, rows: Sequence[Encoded]) -> int:
        """Compute and cache the passage blocks of ``rows`` not cached yet; how many were."""
        if not self._passage_layout_applies(rows):
            raise ValueError("warming needs single-passage prompts and the passage cache on")
        head_ids = tuple(rows[0].ids[: rows[0].head])
        if self.store is not None:
            space = space_name(self.fingerprint(), head_ids)
            rows = [
                r for r in rows if r.passage_id is None or not self.store.has(space, r.passage_id)
            ]
            if not rows:
                return 0
        head = self._prefix_kv(head_ids, keep=True)
        computed = self._blocks(head_ids, head, rows)[1]
        return computed

    def _passage_layout_applies(self, rows: Sequence[Encoded]) -> bool:
        if self.cache is None or not rows or not self.cacheable:
            return False
        first = rows[0]
        if first.head < 1 or first.cached <= first.head:
            return False
        head = first.ids[: first.head]
        return all(
            r.head == first.head
            and r.cached > r.head
            and len(r.ids) > r.cached  # the tail's last position predicts y_0
            and r.ids[: r.head] == head
            for r in rows
        )

    # ------------------------------------------------------------------ the head / prefix

    def _shared_prefix(
        self, rows: Sequence[Sequence[int]], *, keep: bool, head: int = 0
    ) -> tuple[int, KV | None]:
        """(P, KV of the first P tokens) shared by every row; (0, None) when not worth it.

        P leaves at least one token of every row outside the prefix: the last prompt
        position's logits predict y_0 and must be computed per row. ``head`` > 0 (one
        row whose question-independent head is known) caps P there: past the head the
        prefix serves nobody else, and running it apart would cost a forward pass and
        a memo entry for every question.
        """
        if not self.share_prefix or not rows or not self.cacheable:
            return 0, None
        first = rows[0]
        p = min(len(r) for r in rows) - 1
        for r in rows[1:]:
            p = min(p, common_prefix_len(first, r))
        if head > 0:
            p = min(p, head)
        if p < MIN_PREFIX:
            return 0, None
        return p, self._prefix_kv(tuple(first[:p]), keep=keep)

    def _prefix_kv(self, ids: tuple[int, ...], *, keep: bool) -> KV:
        """KV of token ids ``ids`` (batch 1), from the memo entry that agrees longest.

        The memo holds the last :data:`PREFIX_MEMO` prefixes used (least recent dropped
        first), so a passage layout's head and the closed-book prompt of the support pass
        (:mod:`mixrag.support_pass`) do not evict each other. An exact hit returns the same
        KV object; a partial one reuses a cropped view and runs only the rest. The memo is
        dropped when the weights changed since it was made.
        """
        if not keep:
            return self._extend(None, 0, ids)
        stamp = self.fingerprint.stamp()
        if stamp != self._prefix_stamp:
            self._prefixes, self._prefix_stamp = [], stamp
        best, shared = -1, 0
        for i, (old, _kv) in enumerate(self._prefixes):
            n = common_prefix_len(old, ids)
            if n > shared:
                best, shared = i, n
        if best >= 0 and shared >= MIN_PREFIX:
            old, kv = self._prefixes[best]
            if shared == len(old) == len(ids):
                self._prefixes.insert(0, self._prefixes.pop(best))
                return kv
            if shared < len(old):
                kv = [(k[:, :, :shared], v[:, :, :shared]) for k, v in kv]
            if shared < len(ids):
                kv = self._extend(kv, shared, ids[shared:])
        else:
            kv = self._extend(None, 0, ids)
        self._prefixes.insert(0, (ids, kv))
        del self._prefixes[PREFIX_MEMO:]
        return kv

    def _extend(self, base: KV | None, start: int, ids: Sequence[int]) -> KV:
        context = Context.shared(base, start, self.model.device)
        after, _logits = self._run(context, [ids], len(ids))
        return after.layers

    # ------------------------------------------------------------------ passage blocks

    def _blocks(
        self, head_ids: tuple[int, ...], head: KV, rows: Sequence[Encoded]
    ) -> tuple[list[torch.Tensor], int]:
        """Each row's passage block: from memory, from disk, or computed now (each once).

        Returns the blocks and how many were computed.
        """
        assert self.cache is not None
        fp = self.fingerprint()
        space = space_name(fp, head_ids) if self.store is not None else ""
        passages = [r.ids[r.head : r.cached] for r in rows]
        keys = [entry_key(fp, head_ids, p) for p in passages]
        found: dict[str, torch.Tensor] = {}
        missing: dict[str, tuple[Sequence[int], str | None]] = {}
        for key, ids, row in zip(keys, passages, rows, strict=True):
            if key in found or key in missing:
                continue
            block = self.cache.get(key)
            if block is None and self.store is not None and row.passage_id:
                block = self.store.load(space, row.passage_id, key)
                if block is not None:
                    block = block.to(self.model.device)
                    self.cache.put(key, block)
            if block is None:
                missing[key] = (ids, row.passage_id)
            else:
                found[key] = block
        if missing:
            computed = self._compute_blocks(
                head, len(head_ids), {k: v[0] for k, v in missing.items()}
            )
            found.update(computed)
            if self.store is not None:
                info = {
                    **self.store_info,
                    "fingerprint": fp,
                    "head_tokens": len(head_ids),
                    "storage_dtype": str(next(iter(computed.values())).dtype).removeprefix(
                        "torch."
                    ),
                }
                for key, (_ids, pid) in missing.items():
                    if pid:
                        self.store.save(space, pid, key, computed[key], info)
        return [found[key] for key in keys], len(missing)

    def _compute_blocks(
        self, head: KV, head_len: int, missing: dict[str, Sequence[int]]
    ) -> dict[str, torch.Tensor]:
        """Run the missing passages after the head, in padded chunks; cache their blocks."""
        assert self.cache is not None
        order = sorted(missing, key=lambda key: len(missing[key]), reverse=True)
        device = self.model.device
        shared = self.shared_head  # else the head is copied into every row
        context = Context.shared(head, head_len, device)
        store = self.storage_dtype or self.model.dtype
        out: dict[str, torch.Tensor] = {}
        lo = 0
        while lo < len(order):
            width = len(missing[order[lo]])  # longest first: the chunk's width
            per_chunk = max(1, min(self.max_batch_rows, self.max_batch_tokens // max(1, width)))
            chunk = order[lo : lo + per_chunk]
            lo += len(chunk)
            before = (
                Context.after_head(head, head_len, len(chunk), device)
                if shared
                else context.take([0] * len(chunk))
            )
            after, _logits = self._run(before, [missing[k] for k in chunk], width)
            layers = after.layers
            end = width if shared else head_len + width
            for r, key in enumerate(chunk):
                start = end - len(missing[key])
                block = torch.stack(
                    [torch.stack([k[r, :, start:end], v[r, :, start:end]]) for k, v in layers]
                ).to(store)  # [layers, 2, heads, S, d], a copy
                self.cache.put(key, block)
                out[key] = block
        return out


def run_rows(
    model: Any, pad_id: int, context: Context, rests: Sequence[Sequence[int]], width: int
) -> tuple[Context, torch.Tensor]:
    """Run token rows, left-padded to ``width``, after ``context`` (one row of it per rest).

    Returns the context that now includes the rows (KV [n, heads, S + width, d], mask,
    next positions) and the last position's logits [n, V] (float32).
    """
    input_ids, attn, position_ids = layout(
        context, [(width - len(r), list(r)) for r in rests], width, pad_id
    )
    out = model(
        input_ids=input_ids,
        attention_mask=attn,
        position_ids=position_ids,
        use_cache=True,
        logits_to_keep=1,
        **context.forward_kwargs(model.config),
    )
    after = Context(layers_of(out.cache), attn, position_ids[:, -1] + 1, context.shared_head)
    return after, out.logits[:, -1].float()
