"""A conversation -> the question the generator answers and the query the retriever searches.

The question is the last message, which must be the user's. Earlier turns inform
retrieval only, and only when the question refers back (:func:`refers_back`: it has
fewer than three words, starts like "and ..." / "what about ...", or holds a pronoun
or demonstrative such as "it", "they", "this"): then the query is the previous user
message and the assistant's reply to it (its ``[n]`` markers removed), then the
question, e.g. "In which year was the Riverside Mill founded? 1901 Who founded it?".
The generator still reads the question alone: mixrag's prompt is one passage and one
question (generator.prompts), and the passages retrieved for the whole exchange are
what carries it. A question that does not refer back is searched as it is, so a
change of subject is not dragged towards the last one.

System, developer and tool messages are accepted and read by no one: the prompt is
mixrag's fixed short-answer format (chosen by bench/prompt_study.py), which a chat UI's
"You are a helpful assistant" would only pull away from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mixrag.server.chat.config import ChatConfig
from mixrag.server.chat.errors import ChatError
from mixrag.server.chat.schemas import ChatMessage

# fmt: off
REFERRING = frozenset((
    "it", "its", "it's", "itself", "they", "them", "their", "theirs", "themselves",
    "he", "him", "his", "himself", "she", "her", "hers", "herself",
    "this", "that", "these", "those", "there", "then", "former", "latter",
))
# fmt: on
LEADS = ("and ", "but ", "also ", "so ", "what about ", "how about ")
SHORT_WORDS = 3
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_MARKERS = re.compile(r"\s*\[\d+\]")


@dataclass(frozen=True)
class Turn:
    """What one chat request asks: the question, and the text retrieval searches for."""

    question: str
    retrieval_query: str


def message_text(message: ChatMessage) -> str:
    """A message's text: its string content, or its text parts joined by newlines."""
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "\n".join(p.text or "" for p in message.content if p.type == "text")


def refers_back(question: str) -> bool:
    """True when ``question`` needs the turn before it to be understood (module docstring)."""
    lowered = question.strip().lower()
    words = _WORD.findall(lowered)
    if len(words) < SHORT_WORDS or lowered.startswith(LEADS):
        return True
    return any(w in REFERRING for w in words)


def check_conversation(messages: Sequence[ChatMessage], config: ChatConfig) -> None:
    """ChatError 400 unless there are 1..max_messages messages, of at most max_chars
    characters together, the last one the user's and all text."""
    if not messages:
        raise ChatError(400, "invalid_request", "messages: must hold at least one", "messages")
    if len(messages) > config.max_messages:
        raise ChatError(
            400,
            "invalid_request",
            f"messages: {len(messages)} messages; the limit is {config.max_messages}",
            "messages",
        )
    chars = sum(len(message_text(m)) for m in messages)
    if chars > config.max_chars:
        raise ChatError(
            400,
            "invalid_request",
            f"messages: {chars} characters in all; the limit is {config.max_chars}",
            "messages",
        )
    last = messages[-1]
    where = f"messages.[{len(messages) - 1}]"
    if last.role != "user":
        raise ChatError(
            400,
            "invalid_request",
            f"{where}: the last message must be the user's question, not a {last.role!r} one",
            f"{where}.role",
        )
    if isinstance(last.content, list):
        other = sorted({p.type for p in last.content if p.type != "text"})
        if other:
            raise ChatError(
                400,
                "invalid_request",
                f"{where}.content: only text is read, not {', '.join(other)}",
                f"{where}.content",
            )


def _context(earlier: Sequence[ChatMessage]) -> str:
    """The previous user message and the assistant's first reply after it."""
    users = [i for i, m in enumerate(earlier) if m.role == "user"]
    if not users:
        return ""
    parts = [message_text(earlier[users[-1]])]
    reply = next((m for m in earlier[users[-1] + 1 :] if m.role == "assistant"), None)
    if reply is not None:
        parts.append(_MARKERS.sub("", message_text(reply)))
    return " ".join(" ".join(p.split()) for p in parts if p.strip())


def _tail(text: str, chars: int) -> str:
    """The last whole words of ``text`` that fit in ``chars`` characters."""
    if chars <= 0:
        return ""
    if len(text) <= chars:
        return text
    cut = text[len(text) - chars :]
    return cut.split(" ", 1)[1] if " " in cut else ""


def read_turn(messages: Sequence[ChatMessage], config: ChatConfig, max_chars: int) -> Turn:
    """The question (last user message) and the retrieval query, at most ``max_chars``
    long (module docstring); ChatError 400 for a conversation it cannot read."""
    check_conversation(messages, config)
    question = message_text(messages[-1])
    context = _context(messages[:-1]) if refers_back(question) else ""
    if context and question.strip():
        context = _tail(context, max_chars - len(question) - 1)
    query = f"{context} {question.strip()}" if context else question
    return Turn(question=question, retrieval_query=query)
