"""Scoring given answers after prepared contexts: log p_phi(y_i | x, z_j, y_<i) per cell.

A *cell* (b, j) is answer y_b under prompt ``prompts[b][j]``. Two ways to run cells,
both after each prompt's context (:mod:`mixrag.generator.contexts`):

* **row-wise**: each cell is one row ``[rest of prompt] [y_0 .. y_{T-2}]``, every row's
  answer starting at the same column, so the logits that predict y_0..y_{T-1} are the
  last T columns (``logits_to_keep=T``): the vocabulary projection and log-softmax run
  only there, never over the prompt (with a 150k vocabulary that projection costs as
  much as several layers).
* **grouped**, when prompts come with several answers (RAG-Sequence's thorough
  rescoring scores every hypothesis under every passage): each distinct prompt's rest
  runs once (its last position predicts y_0), then every answer's y_0..y_{T-2} runs on
  a copy of that prompt's KV. :func:`prefer_grouped` picks the way that runs fewer tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mixrag.generator.config import GeneratorConfig
from mixrag.generator.contexts import Prepared, run_rows
from mixrag.generator.kv import Context, layout

Cell = tuple[int, int]
# A forward pass has a fixed cost (every weight read once) worth about this many tokens
# of prefill on a CPU; grouping must save more than that to pay for its second pass.
PASS_COST_TOKENS = 64


@dataclass(frozen=True)
class Scorer:
    """Runs scoring passes on ``model``; limits from ``config``."""

    model: Any
    pad_id: int
    config: GeneratorConfig
    vocab_size: int

    def score(
        self,
        prepared: Prepared,
        row_of: dict[str, int],
        groups: dict[str, list[Cell]],
        prompts: Sequence[Sequence[str]],
        answers: Sequence[Sequence[int]],
        out: torch.Tensor,
        smooth: torch.Tensor | None,
        grouping: bool,
    ) -> None:
        """Fill ``out[b, j, :T_b]`` (and ``smooth``) for every cell of ``groups``.

        ``row_of`` maps a prompt to its row of ``prepared``.
        """
        if grouping and smooth is None and prefer_grouped(prepared, row_of, groups, answers):
            self._score_grouped(prepared, row_of, groups, answers, out)
            return
        cells = [c for cs in groups.values() for c in cs]
        rest_len = {p: len(prepared.rests[row_of[p]]) for p in groups}
        # Longest first: similar lengths share a chunk, so little padding.
        cells.sort(key=lambda c: rest_len[prompts[c[0]][c[1]]] + len(answers[c[0]]), reverse=True)
        for chunk in self._chunks(cells, rest_len, prompts, answers):
            index = [row_of[prompts[b][j]] for b, j in chunk]
            context = prepared.build(index)
            rests = [prepared.rests[i] for i in index]
            ys = [list(answers[b]) for b, _j in chunk]
            lp, mean_lp = self.score_rows(context, rests, ys, smooth is not None)  # [n, Tc]
            for r, (b, j) in enumerate(chunk):
                out[b, j, : lp.shape[1]] = lp[r].to(torch.float32)
                if smooth is not None and mean_lp is not None:
                    smooth[b, j, : lp.shape[1]] = mean_lp[r].to(torch.float32)

    def _chunks(
        self,
        cells: list[Cell],
        rest_len: dict[str, int],
        prompts: Sequence[Sequence[str]],
        answers: Sequence[Sequence[int]],
    ) -> Iterator[list[Cell]]:
        cfg = self.config
        chunk: list[Cell] = []
        rest_max = ans_max = 0
        for b, j in cells:
            rest = rest_len[prompts[b][j]]
            new_rest, new_ans = max(rest_max, rest), max(ans_max, len(answers[b]))
            n = len(chunk) + 1
            tokens = n * (new_rest + new_ans - 1)
            logit_bytes = n * new_ans * self.vocab_size * 4
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

    def score_rows(
        self,
        context: Context,
        rests: list[list[int]],
        ys: list[list[int]],
        smoothing: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[n, Tc] log p(y_i | context + rest, y_<i) for n rows in one forward pass.

        With ``smoothing`` also [n, Tc] (1/V) Σ_v log p(v | context + rest, y_<i), else None.
        """
        n = len(rests)
        r_max = max(len(r) for r in rests)
        t_max = max(len(y) for y in ys)
        # every rest ends at column r_max; the last answer token is a target only
        input_ids, attn, position_ids = layout(
            context,
            [(r_max - len(rest), rest + y[:-1]) for rest, y in zip(rests, ys, strict=True)],
            r_max + t_max - 1,
            self.pad_id,
        )
        device = attn.device
        targets = torch.full((n, t_max), self.pad_id, dtype=torch.long)
        y_mask = torch.zeros(n, t_max, dtype=torch.bool)
        for i, y in enumerate(ys):
            targets[i, : len(y)] = torch.tensor(y)
            y_mask[i, : len(y)] = True
        has_context = not context.empty_before
        out = self.model(
            input_ids=input_ids,
            attention_mask=attn,
            position_ids=position_ids,
            use_cache=has_context,
            logits_to_keep=t_max,
            **(context.forward_kwargs(self.model.config) if has_context else {"cache": None}),
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
        prepared: Prepared,
        row_of: dict[str, int],
        groups: dict[str, list[Cell]],
        answers: Sequence[Sequence[int]],
        out: torch.Tensor,
    ) -> None:
        """Fill ``out[b, j]`` running each distinct prompt once, then its answers on its KV."""
        cfg = self.config
        order = sorted(groups, key=lambda p: len(prepared.rests[row_of[p]]), reverse=True)
        lo = 0
        while lo < len(order):
            index = [row_of[order[lo]]]
            r_max = len(prepared.rests[index[0]])
            while lo + len(index) < len(order):
                n = len(index) + 1
                if n > cfg.max_batch_rows or n * r_max > cfg.max_batch_tokens:
                    break
                index.append(row_of[order[lo + len(index)]])
            chunk = order[lo : lo + len(index)]
            lo += len(index)
            after, last = run_rows(
                self.model,
                self.pad_id,
                prepared.build(index),
                [prepared.rests[i] for i in index],
                r_max,
            )
            first = torch.log_softmax(last, dim=-1)  # [U, V]: y_0
            self._score_answers(
                after, first, {q: u for u, q in enumerate(chunk)}, groups, answers, out
            )

    def _score_answers(
        self,
        prompts: Context,
        first: torch.Tensor,
        rows: dict[str, int],
        groups: dict[str, list[Cell]],
        answers: Sequence[Sequence[int]],
        out: torch.Tensor,
    ) -> None:
        """Fill ``out[b, j]`` for the cells of the prompts in ``rows`` from their KV."""
        cfg = self.config
        cells = [(u, b, j) for q, u in rows.items() for b, j in groups[q]]
        for u, b, j in cells:
            out[b, j, 0] = first[u, answers[b][0]].to(torch.float32)
        rest = [(u, b, j) for u, b, j in cells if len(answers[b]) > 1]
        rest.sort(key=lambda c: len(answers[c[1]]), reverse=True)
        # KV tokens held per forward: rows x (context + prompt + answer)
        longest = max((len(answers[b]) for _u, b, _j in rest), default=0)
        per_row = prompts.width + longest
        span = max(1, min(cfg.max_batch_rows, 4 * cfg.max_batch_tokens // per_row))
        lengths = [len(answers[b]) - 1 for _u, b, _j in rest]
        for lo, hi in split_by_length(lengths, PASS_COST_TOKENS, span):
            part = rest[lo:hi]
            lp = self.score_continuations(
                prompts, [u for u, _b, _j in part], [answers[b] for _u, b, _j in part]
            )
            for r, (_u, b, j) in enumerate(part):
                n_lp = len(answers[b]) - 1
                out[b, j, 1 : 1 + n_lp] = lp[r, :n_lp].to(torch.float32)

    def score_continuations(
        self, prompts: Context, src: list[int], ys: list[Sequence[int]]
    ) -> torch.Tensor:
        """[n, T-1] log p(y_i | prompt src[r], y_<i) for i >= 1, on copies of the prompts' KV."""
        n, t_in = len(ys), max(len(y) for y in ys) - 1
        context = prompts.take(src)
        # right-padded: y_0..y_{T-2} in, y_1..y_{T-1} predicted
        input_ids, attn, position_ids = layout(
            context, [(0, list(y[:-1])) for y in ys], t_in, self.pad_id
        )
        device = attn.device
        targets = torch.full((n, t_in), self.pad_id, dtype=torch.long)
        y_mask = torch.zeros(n, t_in, dtype=torch.bool)
        for i, y in enumerate(ys):
            targets[i, : len(y) - 1] = torch.tensor(list(y[1:]))
            y_mask[i, : len(y) - 1] = True
        out = self.model(
            input_ids=input_ids,
            attention_mask=attn,
            position_ids=position_ids,
            use_cache=True,
            logits_to_keep=t_in,
            **context.forward_kwargs(self.model.config),
        )
        logits = out.logits[:, -t_in:].float()
        targets = targets.to(device)
        lp = logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(-1)
        return lp.masked_fill(~y_mask.to(device), 0.0).cpu()


def split_by_length(lengths: Sequence[int], pass_cost: int, max_rows: int) -> list[tuple[int, int]]:
    """Split rows sorted by length (longest first) into consecutive chunks, each one pass.

    A chunk of n rows computes n x (its longest) positions, padding included; each pass
    also costs ``pass_cost`` positions' worth. Returns the (lo, hi) ranges that minimise
    the total, at most ``max_rows`` rows each (dynamic programming, O(n^2)).
    """
    n = len(lengths)
    best = [0.0] + [float("inf")] * n  # best[i]: cost of the first i rows
    cut = [0] * (n + 1)
    for hi in range(1, n + 1):
        for lo in range(max(0, hi - max_rows), hi):
            cost = best[lo] + pass_cost + (hi - lo) * lengths[lo]
            if cost < best[hi]:
                best[hi], cut[hi] = cost, lo
    out = []
    hi = n
    while hi > 0:
        out.append((cut[hi], hi))
        hi = cut[hi]
    return out[::-1]


def prefer_grouped(
    prepared: Prepared,
    row_of: dict[str, int],
    groups: dict[str, list[Cell]],
    answers: Sequence[Sequence[int]],
) -> bool:
    """Whether running each prompt once, then its answers, computes fewer tokens than rows."""
    if all(len(cells) == 1 for cells in groups.values()):
        return False
    rest = {p: len(prepared.rests[row_of[p]]) for p in groups}
    answer_tokens = sum(len(answers[b]) - 1 for cs in groups.values() for b, _j in cs)
    rowwise = sum(rest[p] * len(cs) for p, cs in groups.items()) + answer_tokens
    grouped = sum(rest.values()) + answer_tokens + PASS_COST_TOKENS
    return grouped < rowwise
