"""Turning library results into terminal text (the JSON forms are the objects' to_dict)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mixrag.ingest.pipeline import IngestReport
from mixrag.location import location
from mixrag.support import NOT_FOUND
from mixrag.types import Hit

if TYPE_CHECKING:
    from mixrag.rag import Answer, Citation


def snippet(text: str, width: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rsplit(" ", 1)[0] + "…"


def where(hit: Hit) -> str:
    place = location(hit.passage.metadata)
    return f"{hit.passage.source}, {place}" if place else hit.passage.source


def hits_text(hits: Sequence[Hit]) -> str:
    if not hits:
        return "no passages found"
    lines = []
    for h in hits:
        title = h.passage.title or "(untitled)"
        parts = "" if h.bm25 is None else f" (dense {h.dense:.3f}, bm25 {h.bm25:.2f})"
        head = f"[{h.rank}] p={h.prior:.3f}  score={h.score:.3f}{parts}"
        lines.append(f"{head}  {title}  — {where(h)}")
        lines.append(textwrap.indent(textwrap.fill(snippet(h.passage.text), 96), "    "))
    return "\n".join(lines)


def report_text(r: IngestReport) -> str:
    done = len(r.added) + len(r.updated)
    rate = r.passages_encoded / r.seconds if r.seconds > 0 else 0.0
    parts = [
        f"indexed {done} file(s) ({len(r.added)} new, {len(r.updated)} changed, "
        f"{len(r.unchanged)} unchanged): +{r.passages_added} / -{r.passages_removed} passages, "
        f"{r.passages_encoded} encoded in {r.seconds:.1f} s ({rate:.0f} passages/s)"
    ]
    if r.unsupported:
        exts = sorted({_ext(p) for p in r.unsupported})
        parts.append(f"skipped {len(r.unsupported)} file(s) of unsupported type: {', '.join(exts)}")
    for w in r.warnings:
        parts.append(f"warning: {w}")
    for path, reason in r.failed:
        parts.append(f"error: {path}: {reason}")
    return "\n".join(parts)


def _ext(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1] if "." in name else "(no extension)"


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in params.items())


def info_text(info: dict[str, Any]) -> str:
    enc = info["encoder"]
    vec = info["vector_index"]
    ch = info["config"]["chunking"]
    return "\n".join(
        [
            f"index      {info['path']}",
            f"documents  {info['documents']} in {info['files']} file(s)",
            f"passages   {info['passages']} ({ch['words']} words, overlap {ch['overlap']}"
            + (", sentence-packed" if ch["sentences"] else "")
            + ")",
            f"encoder    {enc.get('model')} (dim {enc.get('dim', '?')}, "
            f"fingerprint {enc.get('fingerprint', 'not yet recorded')})",
            f"vectors    {vec['kind']}"
            + (f" ({_params_text(vec.get('params', {}))})" if vec.get("params") else "")
            + (", memory-mapped" if vec.get("mmap") else "")
            + (
                f"; ivfpq from {vec.get('min_passages', 0):,} passages"
                if vec.get("configured") == "ivfpq" and vec["kind"] != "ivfpq"
                else ""
            )
            + ("" if vec["up_to_date"] else " (rebuilt on next use)"),
            f"size       {info['size_bytes'] / 1e6:.1f} MB on disk",
            *_passage_kv_lines(info.get("passage_kv") or []),
        ]
    )


def _passage_kv_lines(usage: list[dict[str, Any]]) -> list[str]:
    """One line per model whose passage KV blocks the index keeps (``mixrag warm``)."""
    lines = []
    for u in usage:
        per = u.get("bytes_per_passage")
        lines.append(
            f"passage KV {u.get('model', '?')} ({u.get('storage_dtype', '?')}, "
            f"prompt head {u.get('head_tokens', '?')} tokens): "
            f"{u['blocks']} passages, {u['bytes'] / 1e6:.1f} MB"
            + (f", {per / 1e6:.2f} MB a passage" if per else "")
        )
    return lines or ["passage KV none (mixrag warm computes it)"]


def _bar(p: float, width: int = 20) -> str:
    n = round(max(0.0, min(1.0, p)) * width)
    return "█" * n + "·" * (width - n)


def answer_text(answer: Answer, scored: bool = False, show_guess: bool = False) -> str:
    """The answer with its probability and support, then the passages as numbered
    citations. An answer the documents do not support is shown as "Not found in the
    documents." unless ``scored`` or ``show_guess`` (then as a best guess).

    Citations are ordered by posterior: [n] is the passage's retrieval rank.
    """

    def weight(c: Citation) -> float:
        return c.prior if c.posterior is None else c.posterior

    best = max(answer.citations, key=weight, default=None)
    cite = f" [{best.hit.rank}]" if best is not None and best.posterior is not None else ""
    verb = "scored" if scored else "answer"
    if scored or answer.supported:
        head = [f"{verb} ({answer.mode}): {answer.text}{cite}"]
    else:
        head = [f"{verb} ({answer.mode}): {NOT_FOUND}"]
        if show_guess:
            head.append(f"best guess: {answer.text}{cite}")
    support = answer.support_line()
    lines = [
        *head,
        *([support] if support else []),
        f"log p(y|x) = {answer.logprob:.3f}   p = {answer.probability:.3g}"
        + (
            f"   gain over closed-book = {answer.support.gain:+.2f} nats"
            if answer.support is not None and answer.mode != "closed-book"
            else ""
        ),
        *(
            ["also considered: " + " · ".join(f"{a.text} (p = {a.probability:.2g})" for a in alts)]
            if (alts := answer.alternatives) and (scored or answer.supported or show_guess)
            else []
        ),
        "",
        "passages          prior p(z|x)              posterior p(z|x,y)",
    ]
    for c in sorted(answer.citations, key=lambda c: -weight(c)):
        h = c.hit
        post = (
            "–".rjust(6) + " " * 21
            if c.posterior is None
            else f"{c.posterior:6.3f} {_bar(c.posterior)}"
        )
        lines.append(
            f"[{h.rank}] {c.prior:6.3f} {_bar(c.prior)}  {post}  "
            f"{h.passage.title or '(untitled)'} — {where(h)}"
        )
        lines.append(textwrap.indent(textwrap.fill(snippet(h.passage.text, 160), 96), "    "))
    t = answer.timings
    if t:
        lines.append("")
        lines.append("time: " + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()))
    return "\n".join(lines)


def dev_change(start: dict[str, float], end: dict[str, float]) -> str:
    """'EM 40.0 -> 46.0, R@5 0.826 -> 0.835, ...' for the figures both evaluations hold."""
    parts = []
    for key, label, fmt in (
        ("em", "EM", ".1f"),
        ("f1", "F1", ".1f"),
        ("recall@1", "R@1", ".3f"),
        ("recall@5", "R@5", ".3f"),
        ("mrr", "MRR", ".3f"),
        ("answer@5", "answer@5", ".3f"),
    ):
        if start.get(key) is not None and end.get(key) is not None:
            parts.append(f"{label} {start[key]:{fmt}} -> {end[key]:{fmt}}")
    return ", ".join(parts)
