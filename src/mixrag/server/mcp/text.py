"""The readable text of each MCP tool's result (its JSON is the HTTP API's body, beside it).

A client may show a model either part: the text is what a model reads well (the answer
first, then numbered passages with their probabilities and full text), the structured
content what a program reads (the ``/v1`` response forms, :mod:`mixrag.server.schemas`).
Passages are numbered ``[n]`` by retrieval rank, as the CLI and the web page number them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mixrag.answer import Answer, Citation
from mixrag.location import location
from mixrag.types import Hit


def _where(hit: Hit) -> str:
    place = location(hit.passage.metadata)
    return f"{hit.passage.source}, {place}" if place else hit.passage.source


def _passage(hit: Hit, head: str) -> list[str]:
    title = hit.passage.title or "(untitled)"
    return [
        f"[{hit.rank}] {head}: {title} ({_where(hit)})",
        "    " + " ".join(hit.passage.text.split()),
    ]


def hits_text(question: str, method: str, hits: Sequence[Hit]) -> str:
    """The hits of a search, best first, with score, prior and text."""
    if not hits:
        return f"No passage found for {question!r} ({method} retrieval)."
    lines = [
        f"{len(hits)} passages for {question!r} ({method} retrieval); prior p(z|x) is the "
        f"retriever's probability over these {len(hits)}:",
    ]
    for h in hits:
        lines += _passage(h, f"prior {h.prior:.3f}, score {h.score:.3f}")
    return "\n".join(lines)


def _weight(c: Citation) -> float:
    return c.prior if c.posterior is None else c.posterior


def _alternatives(answer: Answer) -> list[str]:
    """One line for the other answers ranked below this one, when they were asked for."""
    if not answer.alternatives:
        return []
    listed = "; ".join(f"{a.text!r} (p = {a.probability:.3g})" for a in answer.alternatives)
    return [f"Other answers, by p(y|x): {listed}."]


def answer_text(answer: Answer, scored: bool = False) -> str:
    """The answer with its citations ``[n]`` (:meth:`Answer.cited`, as the chat API and the
    web page mark them), or "Not found in the documents." then the best guess when the
    documents do not support it; its support, log p(y|x), the other answers if asked for,
    then the passages by posterior."""
    k = len(answer.citations)
    marks = answer.markers()
    head = (
        f"Scored answer: {answer.text!r} {marks}".rstrip()
        if scored
        else (answer.shown() or "(empty)")
    )
    support = answer.support_line()
    guess = [] if scored or answer.supported else [f"Best guess: {answer.marked() or '(empty)'}"]
    lines = [
        head,
        *guess,
        *([support[0].upper() + support[1:] + "."] if support else []),
        "",
        f"log p(y|x) = {answer.logprob:.3f} (p = {answer.probability:.3g}) under {answer.mode} "
        f"with K = {k}.",
        *_alternatives(answer),
        "Passages by posterior p(z|x,y), the probability that each is the answer's source "
        "(prior p(z|x) before reading the answer):",
    ]
    for c in sorted(answer.citations, key=lambda c: -_weight(c)):
        post = "unknown" if c.posterior is None else f"{c.posterior:.3f}"
        lines += _passage(c.hit, f"posterior {post}, prior {c.prior:.3f}")
    return "\n".join(lines)


def documents_text(documents: Sequence[dict[str, Any]]) -> str:
    """One line per indexed file: id, name, passages, where it came from."""
    if not documents:
        return "The index holds no documents."
    lines = [f"{len(documents)} indexed file(s) (id: name, passages, origin):"]
    for d in documents:
        origin = "added through the API" if d["uploaded"] else d["path"]
        lines.append(f"{d['id']}: {d['name']}, {d['passages']} passages, {origin}")
    return "\n".join(lines)


def upload_text(status: str, document: dict[str, Any]) -> str:
    return (
        f"{status}: {document['name']} (id {document['id']}), {document['passages']} passages"
        f" in {document['documents']} document(s)."
    )


def removed_text(document: dict[str, Any]) -> str:
    return (
        f"removed: {document['name']} (id {document['id']}) and its "
        f"{document['passages']} passages."
    )
