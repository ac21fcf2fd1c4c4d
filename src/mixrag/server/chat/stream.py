"""The answer as OpenAI's ``chat.completion.chunk`` events, ending with ``data: [DONE]``.

Chunks, each a ``data:`` line: the role (``{"role": "assistant", "content": ""}``);
content deltas; a last content delta with the rest of the answer and its ``[n]``
markers; the chunk with ``finish_reason`` and the ``mixrag`` field (the whole answer
with priors and posteriors, as in a non-streamed reply); with
``stream_options.include_usage``, a usage chunk with no choices; then ``[DONE]``.
An error after the stream began is a ``data: {"error": {...}}`` line, as OpenAI
sends it (OpenAI clients raise it), and the stream ends.

A delta is never taken back, since an OpenAI client appends every one:

* Greedy RAG-Token, concat and closed-book decode the answer itself, token after
  token, so their text streams, but a word is sent only once the next one has begun
  (:class:`FinalText`): its last characters can still change (the tokenizer's clean-up
  joins " 's" to the word before it; ``clean_answer`` drops a final period).
* RAG-Sequence and beam search only know their answer when decoding ends
  (``/v1/ask`` streams their running leader marked provisional); here it comes in one
  delta then, and comment lines keep the connection open until it does. An answer the
  documents do not support then reads "Not found in the documents." as when not
  streamed; a streamed one has its guess followed by that sentence and its p(y|x).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from mixrag.server.chat.errors import stream_error
from mixrag.server.chat.replies import (
    Reply,
    chunk,
    content,
    extension,
    finish_reason,
    markers,
    usage,
)
from mixrag.server.streaming import AnswerStream
from mixrag.support import NOT_FOUND

log = logging.getLogger(__name__)

DONE = "data: [DONE]\n\n"
KEEP_ALIVE = ": waiting\n\n"
_LAST_WORD = re.compile(r"\s+\S*$")


def data(obj: Any) -> str:
    """One ``data:`` line of Server-Sent Events (JSON holds no raw newline)."""
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


class FinalText:
    """The part of a streamed answer that can no longer change: the text before its last
    word (module docstring). ``sent`` is what has been handed out so far."""

    def __init__(self) -> None:
        self.sent = ""

    def advance(self, text: str) -> str:
        """What to send now that the answer so far reads ``text`` ("" for nothing)."""
        last = _LAST_WORD.search(text)
        settled = text[: last.start()] if last else ""
        if len(settled) <= len(self.sent) or not settled.startswith(self.sent):
            return ""
        delta, self.sent = settled[len(self.sent) :], settled
        return delta

    def finish(self, text: str) -> str:
        """The rest of the final answer ``text``."""
        if not text.startswith(self.sent):  # not expected: the content may then be wrong
            log.warning("streamed %r, but the answer is %r", self.sent, text)
            return ""
        delta, self.sent = text[len(self.sent) :], text
        return delta


async def chat_events(stream: AnswerStream, reply: Reply) -> AsyncIterator[str]:
    """The Server-Sent Events of a streamed chat reply (module docstring)."""
    text = None if stream.provisional else FinalText()
    try:
        yield data(chunk(reply, {"role": "assistant", "content": ""}))
        async with contextlib.aclosing(stream.items()) as items:
            async for item in items:
                if item is None:
                    yield KEEP_ALIVE
                    continue
                event, payload = item
                if event == "token" and text is not None:
                    delta = text.advance(payload["text"])
                    if delta:
                        yield data(chunk(reply, {"content": delta}))
                elif event == "error":
                    yield data(stream_error(payload))
                    return
                elif event == "answer":
                    for line in _ending(stream, reply, text):
                        yield line
    finally:
        stream.close()


def _ending(stream: AnswerStream, reply: Reply, text: FinalText | None) -> list[str]:
    """The last chunks once the answer is known, and [DONE]."""
    answer = stream.answer
    if text is None:  # nothing streamed yet: the content is the non-streamed reply's
        rest = content(answer)
    else:
        rest = text.finish(answer.text)
        cites = markers(answer)
        if cites:
            rest += f" {cites}" if answer.text else cites
        if not answer.supported:  # the guess has gone out already: say what it is
            rest += f"\n\n{NOT_FOUND} (p = {answer.probability:.2g})"
    lines = [data(chunk(reply, {"content": rest}))] if rest else []
    end = chunk(reply, {}, finish_reason(answer, reply.params), mixrag=extension(answer, reply))
    lines.append(data(end))
    if reply.include_usage:
        lines.append(data(chunk(reply, None, usage=usage(answer, reply))))
    lines.append(DONE)
    return lines
