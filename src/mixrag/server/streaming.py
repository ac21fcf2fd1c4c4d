"""Server-Sent Events for ``POST /v1/ask``: the answer as it is decoded, then its account.

Events, in order (``data`` is JSON):

* ``passages``: the K retrieved passages with their prior p(z|x), before decoding
  starts; ``provisional`` says how the ``token`` events that follow should be read.
* ``token`` (zero or more): ``{"text", "delta", "provisional"}``: the answer so far as
  ``Answer.text`` would show it, and what this step appended (null when the text was
  replaced rather than extended). Greedy RAG-Token, concat and closed-book stream the
  answer itself (``provisional`` false). Beam search and RAG-Sequence stream the
  decoder's current leader, marked provisional: for RAG-Sequence that is the beam of
  the passage with the highest prior, and the answer is only decided once every
  passage's beam has finished and the union is ranked by the mixture (thorough: after
  rescoring under every passage).
* ``answer``: the final ``Answer.to_dict()`` (text, log p(y|x), passages with prior and
  posterior, timings). Its text is the answer, whatever was streamed before.
* ``error``: ``{"error", "detail"}`` when answering failed after the stream began.

Decoding runs on the generator's worker thread; its events reach the response
through an asyncio queue. A client that disconnects stops the decoding at its next
step (or drops it from the queue), so it does not hold the generator for nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import Future
from typing import Any

from mixrag.errors import MixragError
from mixrag.rag import Answer
from mixrag.server.concurrency import BusyError
from mixrag.server.errors import ApiError, api_error, error_body
from mixrag.server.params import AskParams
from mixrag.server.service import Service
from mixrag.types import Hit

log = logging.getLogger(__name__)

KEEP_ALIVE_S = 15.0


def finite(obj: Any) -> Any:
    """``obj`` with non-finite floats replaced by None (JSON has no inf or NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def sse(event: str, data: Any) -> str:
    """One Server-Sent Event; JSON data never holds a raw newline, so one data line."""
    return f"event: {event}\ndata: {json.dumps(finite(data), ensure_ascii=False)}\n\n"


class TextStream:
    """Turns the decoder's leading token ids into ``token`` event payloads.

    A step that does not change the visible text (an end token, a newline the answer
    is cut at) sends nothing; nor does text ending in an incomplete UTF-8 character,
    which the next token completes.
    """

    def __init__(self, text_of: Callable[[tuple[int, ...]], str], provisional: bool) -> None:
        self.text_of = text_of
        self.provisional = provisional
        self.sent = ""

    def update(self, token_ids: tuple[int, ...]) -> dict[str, Any] | None:
        text = self.text_of(token_ids)
        if text == self.sent or text.endswith("\ufffd"):
            return None
        delta = text[len(self.sent) :] if text.startswith(self.sent) else None
        self.sent = text
        return {"text": text, "delta": delta, "provisional": self.provisional}


class _ClientGone(Exception):
    """Raised inside decoding to abandon it."""


class AnswerStream:
    """The SSE stream of one ask whose passages are already retrieved (module docstring).

    Constructing it queues the decoding, so a full queue raises
    :class:`~mixrag.server.concurrency.BusyError` before any response starts.
    Construct it in the event loop that will read :meth:`events`.
    """

    def __init__(self, service: Service, params: AskParams, hits: list[Hit]) -> None:
        self.params = params
        self.hits = hits
        self.provisional = not params.rag_config().prefix_is_final
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
        self._gone = threading.Event()
        self._text = TextStream(service.text_of, self.provisional)
        self._future = service.submit_answer(params, hits, self._on_prefix)
        self._future.add_done_callback(self._finished)

    def _put(self, item: tuple[str, Any] | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the server is stopping
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _on_prefix(self, question: int, token_ids: tuple[int, ...]) -> None:
        """On the generator's thread, after every decoding step."""
        if self._gone.is_set():
            raise _ClientGone
        payload = self._text.update(token_ids)
        if payload is not None:
            self._put(("token", payload))

    def _finished(self, future: Future[Answer]) -> None:
        if not future.cancelled():
            exc = future.exception()
            if exc is None:
                self._put(("answer", future.result().to_dict()))
            elif isinstance(exc, _ClientGone):
                log.info("client left; decoding abandoned")
            elif isinstance(exc, ApiError | MixragError | BusyError):
                self._put(("error", error_body(api_error(exc))))
            else:
                log.error("answering %r failed", self.params.question, exc_info=exc)
                self._put(("error", {"error": "internal_error", "detail": "see the server log"}))
        self._put(None)

    @property
    def answer(self) -> Answer:
        """The answer; call it once :meth:`items` has given the ``answer`` event."""
        return self._future.result(timeout=0)

    def close(self) -> None:
        """The client is gone: a queued answer is dropped, a running one stops at its next
        step. Idempotent."""
        self._gone.set()
        self._future.cancel()

    async def items(self) -> AsyncGenerator[tuple[str, Any] | None, None]:
        """The ``token``, ``answer`` or ``error`` events as (name, data) as they come, and
        None every ``KEEP_ALIVE_S`` while nothing does; ends after ``answer`` or ``error``.
        Leaving early closes the stream (:meth:`close`)."""
        try:
            while True:
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout=KEEP_ALIVE_S)
                except TimeoutError:
                    yield None
                    continue
                if item is None:
                    break
                yield item
        finally:
            self.close()

    async def events(self) -> AsyncIterator[str]:
        """The Server-Sent Events of ``/v1/ask`` (module docstring)."""
        try:
            yield sse(
                "passages",
                {
                    "mode": self.params.mode,
                    "k": self.params.k,
                    "method": self.params.method,
                    "provisional": self.provisional,
                    "passages": [h.to_dict() for h in self.hits],
                },
            )
            async with contextlib.aclosing(self.items()) as items:
                async for item in items:
                    # a comment keeps proxies from closing a queued stream
                    yield ": waiting\n\n" if item is None else sse(*item)
        finally:
            self.close()
