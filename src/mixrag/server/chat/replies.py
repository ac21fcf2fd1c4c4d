"""An answer as OpenAI's chat objects: a ``chat.completion``, its chunks, the usage.

The message content is the answer text, then ``[n]`` for every passage
:meth:`Answer.cited <mixrag.answer.Answer.cited>` names (the most likely source by
posterior p(z|x,y), and any other with at least 0.25), n being the passage's retrieval
rank: the ``rank`` of ``/v1/ask``'s passages, the web page's cards, ``mixrag ask``'s
``[n]``. The ``mixrag`` field holds ``/v1/ask``'s answer (``Answer.to_dict()``: log
p(y|x), every passage with prior and posterior) and how the request was read.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from mixrag.answer import Answer
from mixrag.server.chat.conversation import Turn
from mixrag.server.params import AskParams
from mixrag.server.streaming import finite


@dataclass(frozen=True)
class Reply:
    """One chat reply's setting: its id, time and model name, and what was asked.

    prompt_tokens: tokens of the question (the last user message) under the generator's
    tokenizer; the instruction, few-shot turns and passages around it are not counted
    (the same for every request, and mostly read from the passage KV cache).
    """

    id: str
    created: int
    model: str
    turn: Turn
    params: AskParams
    ignored: tuple[str, ...] = ()
    include_usage: bool = False
    prompt_tokens: int = 0

    @classmethod
    def new(cls, model: str, turn: Turn, params: AskParams, **fields: Any) -> Reply:
        """A reply with a fresh ``chatcmpl-`` id, created now."""
        return cls(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), model, turn, params, **fields)


def markers(answer: Answer) -> str:
    """``[n]`` for each cited passage, most probable first (``Answer.markers``)."""
    return answer.markers()


def content(answer: Answer) -> str:
    """The message content: the answer, a space, its markers (``Answer.marked``); for an
    answer the documents do not support, "Not found in the documents." (``Answer.shown``;
    the ``mixrag`` field keeps the guess, its p(y|x) and its gain)."""
    return answer.shown()


def finish_reason(answer: Answer, params: AskParams) -> str:
    """``length`` when the answer used every token it was allowed, else ``stop``."""
    return "length" if len(answer.token_ids) >= params.max_new_tokens else "stop"


def extension(answer: Answer, reply: Reply) -> dict[str, Any]:
    """The ``mixrag`` field: ``/v1/ask``'s answer and how the request was read."""
    out: dict[str, Any] = finite(answer.to_dict())
    out.update(
        cited=[c.hit.rank for c in answer.cited()],
        retrieval_query=reply.turn.retrieval_query,
        k=reply.params.k,
        method=reply.params.method,
        ignored=list(reply.ignored),
    )
    return out


def usage(answer: Answer, reply: Reply) -> dict[str, int]:
    """OpenAI's usage object (see :class:`Reply` for what ``prompt_tokens`` counts)."""
    completion = len(answer.token_ids)
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": reply.prompt_tokens + completion,
    }


def completion(answer: Answer, reply: Reply) -> dict[str, Any]:
    """The ``chat.completion`` object of a non-streamed reply."""
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content(answer), "refusal": None},
                "finish_reason": finish_reason(answer, reply.params),
                "logprobs": None,
            }
        ],
        "usage": usage(answer, reply),
        "mixrag": extension(answer, reply),
    }


def chunk(
    reply: Reply,
    delta: dict[str, Any] | None,
    finish: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``: one choice with ``delta`` (and ``finish``), or none
    when ``delta`` is None (the usage chunk); ``fields`` are added at the top level."""
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )
    return {
        "id": reply.id,
        "object": "chat.completion.chunk",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": None,
        "choices": choices,
        **fields,
    }
