"""The mixture's account of an answer: per-passage log p_phi(y|x,z_j), the mode's
log p(y|x), the posteriors p(z_j|x,y) and the citations (Lewis et al. 2020 §2.1-2.2).

Kept apart from :mod:`mixrag.rag` (answering: retrieval, decoding, the support pass),
which calls :func:`explain` once per batch of answers, decoded or given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch

from mixrag.answer import Answer, Citation, RAGConfig
from mixrag.errors import MixragError
from mixrag.mixture import (
    log_mixture,
    rag_token_logprob,
    rag_token_posterior,
    sequence_logprobs,
    sequence_posterior,
    token_posterior,
)
from mixrag.types import Hit

if TYPE_CHECKING:
    from mixrag.generator.base import Generator
    from mixrag.generator.hf import TransformersGenerator
    from mixrag.generator.vllm import VLLMGenerator


class Answering(Protocol):
    """What :func:`explain` uses of a :class:`~mixrag.rag.RAG`."""

    @property
    def generator(self) -> Any: ...  # renders prompts, decodes ids

    @property
    def steps(self) -> Generator: ...  # runs the scoring passes

    def single_prompt(self, question: str, hits: Sequence[Hit], mode: str) -> str: ...

    def answer_text(self, ids: Sequence[int]) -> str: ...


def passage_prompts(
    generator: TransformersGenerator | VLLMGenerator,
    questions: Sequence[str],
    hits: Sequence[Sequence[Hit]],
    k: int,
) -> list[list[str]]:
    """[B][k] rendered prompts "x with one passage z_j" in the generator's prompt format.

    A question with fewer than k hits repeats its first prompt in the padding slots (the
    prior masks them out), so every row of the [B, K, T] batch has K prompts. The one
    place inference (:class:`RAG`) and training (:class:`mixrag.train.Trainer`) build them.
    """
    fmt = generator.config.prompt_format
    out = []
    for q, hs in zip(questions, hits, strict=True):
        if not hs:
            raise MixragError(f"no passages retrieved for {q!r}: is the index empty?")
        row = [generator.render(fmt.passage(q, h.passage), passage=h.passage) for h in hs]
        out.append(row + [row[0]] * (k - len(row)))
    return out


def _pad_tokens(
    known_tokens: Sequence[Sequence[Sequence[float]]],
    answer_ids: Sequence[Sequence[int]],
    k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """[B][K][T_b] token log-probs as a [B, K, T] tensor (0 past each answer's end) and
    its [B, T] mask; each question's K rows must span its answer's T_b tokens."""
    t_max = max((len(a) for a in answer_ids), default=0)
    per_token = torch.zeros(len(answer_ids), k, t_max)
    mask = torch.zeros(len(answer_ids), t_max, dtype=torch.bool)
    for b, (rows, ids) in enumerate(zip(known_tokens, answer_ids, strict=True)):
        t = len(ids)
        if len(rows) != k or any(len(r) != t for r in rows):
            shape = [len(r) for r in rows]
            raise ValueError(
                f"known_tokens[{b}] must be {k} rows of {t} log-probs, got rows of {shape}"
            )
        per_token[b, :, :t] = torch.tensor(rows, dtype=torch.float32).reshape(k, t)
        mask[b, :t] = True
    return per_token, mask


def explain(
    rag: Answering,
    questions: Sequence[str],
    hits: Sequence[Sequence[Hit]],
    k: int,
    log_prior: torch.Tensor,
    answer_ids: Sequence[Sequence[int]],
    cfg: RAGConfig,
    known: Sequence[Sequence[float | None]] | None,
    decoded_logprob: Sequence[float] | None,
    posteriors: bool = True,
    known_tokens: Sequence[Sequence[Sequence[float]]] | None = None,
) -> list[Answer]:
    """Per-passage log p_phi(y|x,z_j), the mode's log p(y|x), posteriors, citations.

    ``known`` are per-passage sequence log-probs already computed by decoding (None
    entries stand for ≈ 0 probability); ``known_tokens`` [B][K][T] per-passage token
    log-probs log p_phi(y_i|x,z_j,y_<i) already computed by decoding (RAG-Token greedy
    reads them all); otherwise all K are scored in one batch. Without ``posteriors`` a
    concat/closed-book answer is not scored per passage.
    """
    b_size = len(questions)
    per_token: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    skip = not posteriors and known is None and cfg.mode in ("concat", "closed-book")
    if skip:
        seq = torch.full((b_size, k), math.nan)
    elif known_tokens is not None:
        per_token, mask = _pad_tokens(known_tokens, answer_ids, k)  # [B, K, T], [B, T]
        seq = sequence_logprobs(per_token, mask)  # [B, K]
    elif known is not None:
        seq = torch.tensor(
            [[-math.inf if v is None else v for v in row] for row in known],
            dtype=torch.float32,
        )  # [B, K]
    else:
        prompts = passage_prompts(rag.generator, questions, hits, k)
        tl = rag.steps.logprobs(prompts, [list(a) for a in answer_ids])
        per_token, mask = tl.logprobs.float(), tl.mask  # [B, K, T], [B, T]
        seq = sequence_logprobs(per_token, mask)  # [B, K]
    # p(z_j|x,y) ∝ p_eta(z_j|x) p_phi(y|x,z_j): the sequence posterior, y as one "token".
    post = sequence_posterior(
        log_prior, seq[:, :, None], torch.ones(b_size, 1, dtype=torch.bool)
    )  # NaN where skipped

    # The mode's own log p(y|x).
    if cfg.mode == "rag-sequence":
        mode_lp = log_mixture(log_prior, seq)  # [B]
    elif cfg.mode == "rag-token":
        assert per_token is not None and mask is not None
        mode_lp = rag_token_logprob(log_prior, per_token, mask)
    elif decoded_logprob is not None:
        mode_lp = torch.tensor(decoded_logprob, dtype=torch.float32)
    else:
        single = [
            [rag.single_prompt(q, hs, cfg.mode)] for q, hs in zip(questions, hits, strict=True)
        ]
        tl1 = rag.steps.logprobs(single, [list(a) for a in answer_ids])
        mode_lp = tl1.sequence_logprobs()[:, 0]

    tok_post = None
    share = None
    if cfg.mode == "rag-token":
        assert per_token is not None and mask is not None
        tok_post = token_posterior(log_prior, per_token, mask)  # [B, K, T]
        share = rag_token_posterior(log_prior, per_token, mask)  # [B, K]

    out = []
    for b in range(b_size):
        n_hits = len(hits[b])
        t_len = len(answer_ids[b])
        cites = tuple(
            Citation(
                hit=hits[b][j],
                prior=float(log_prior[b, j].exp()),
                posterior=None if skip else float(post[b, j]),
                logprob=None if not math.isfinite(float(seq[b, j])) else float(seq[b, j]),
                token_share=None if share is None else float(share[b, j]),
            )
            for j in range(n_hits)
        )
        ids = tuple(int(t) for t in answer_ids[b])
        out.append(
            Answer(
                question=questions[b],
                mode=cfg.mode,
                text=rag.answer_text(ids),
                logprob=float(mode_lp[b]),
                token_ids=ids,
                citations=cites,
                tokens=tuple(rag.generator.decode([t]) for t in ids),
                token_posteriors=()
                if tok_post is None
                else tuple(
                    tuple(float(tok_post[b, j, i]) for j in range(n_hits)) for i in range(t_len)
                ),
            )
        )
    return out
