"""ChatConfig: the limits of a conversation sent to ``POST /v1/chat/completions``."""

from __future__ import annotations

from dataclasses import dataclass

from mixrag.errors import MixragError


@dataclass(frozen=True)
class ChatConfig:
    """What a chat request may hold beyond ``/v1/ask``'s limits, which apply too (the
    question, i.e. the last user message, is bounded by ``max_question_chars``; K, beams
    and answer length by the server's limits).

    max_messages: most messages in one request (a chat UI sends the whole conversation).
    max_chars:    most characters of text in all messages together.
    """

    max_messages: int = 128
    max_chars: int = 200_000

    def __post_init__(self) -> None:
        for name, value in (("max_messages", self.max_messages), ("max_chars", self.max_chars)):
            if value < 1:
                raise MixragError(f"chat {name} must be >= 1, got {value}")
