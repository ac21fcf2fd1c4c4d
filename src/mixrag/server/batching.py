"""Asks decoded at once: each with its own answer and stream, sharing every forward pass.

The generator's forward passes all run on the :class:`~mixrag.generator.engine.StepEngine`
thread, which merges the decodes under way into one batch per step (continuous
batching): an ask that arrives while others decode joins them at their next step
instead of waiting for them to finish. This module decides which asks decode, on up
to ``max_running`` threads: a free thread takes the oldest waiting ask and every other
waiting ask with the same answering settings (mode, K, beams, decoding, length), up to
``max_batch``, and answers them in one ``RAG.ask_batch`` (one prefill and one search
for all of them); asks only wait here while ``max_running`` batches are decoding.

Each ask keeps its own :class:`~concurrent.futures.Future` and its own streaming
callback: the batch's ``on_prefix`` dispatches question i's tokens to ask i, and a
callback that raises (a client that went away) only stops that ask's stream; decoding
stops early only when every ask of the batch is gone. An ask cancelled while queued is
dropped. The queue is bounded in asks: beyond ``max_waiting`` asks running or waiting a
new one is refused at once (:class:`~mixrag.server.concurrency.BusyError`).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from mixrag.decoding import PrefixFn
from mixrag.generator.engine import decoding_thread_setup
from mixrag.rag import Answer, RAGConfig
from mixrag.server.concurrency import BusyError
from mixrag.types import Hit

log = logging.getLogger(__name__)

AnswerBatch = Callable[[RAGConfig, Sequence[str], Sequence[list[Hit]], PrefixFn], list[Answer]]


class _AllGone(Exception):
    """Every ask of a batch has left: stop decoding."""


@dataclass
class PendingAsk:
    """One ask waiting for (or in) a batch."""

    config: RAGConfig
    question: str
    hits: list[Hit]
    on_prefix: PrefixFn | None
    future: Future[Answer] = field(default_factory=Future)
    error: BaseException | None = None


class AskBatcher:
    """Queues asks and answers compatible ones together, ``max_running`` batches at once
    (module docstring).

    ``answer_batch(config, questions, hits, on_prefix)`` answers one batch on the calling
    thread (the service runs ``RAG.ask_batch`` in a session of its engine).
    """

    def __init__(
        self,
        answer_batch: AnswerBatch,
        max_batch: int,
        max_waiting: int,
        max_running: int = 1,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_running < 1:
            raise ValueError(f"max_running must be >= 1, got {max_running}")
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.max_running = max_running
        #: the threads batches decode on (tests occupy them to make asks wait)
        self.threads = ThreadPoolExecutor(
            max_running, thread_name_prefix="mixrag-ask", initializer=decoding_thread_setup
        )
        self._answer_batch = answer_batch
        self._pending: collections.deque[PendingAsk] = collections.deque()
        self._lock = threading.Lock()
        self._outstanding = 0  # asks running or waiting
        self._draining = 0  # threads taking batches
        self._closed = False
        #: how many batches of each size were answered (for /v1/info and the benchmark)
        self.batch_sizes: collections.Counter[int] = collections.Counter()

    @property
    def pending(self) -> int:
        """Asks running or waiting."""
        return self._outstanding

    @property
    def full(self) -> bool:
        """True when an ask submitted now would be refused."""
        return self._outstanding > self.max_waiting

    def submit(
        self,
        config: RAGConfig,
        question: str,
        hits: list[Hit],
        on_prefix: PrefixFn | None = None,
    ) -> Future[Answer]:
        """Queue an ask; its future completes with its own answer. Raises BusyError when full."""
        ask = PendingAsk(config, question, hits, on_prefix)
        with self._lock:
            if self._closed:
                raise BusyError("the server is shutting down")
            if self._outstanding > self.max_waiting:
                raise BusyError(
                    f"{self._outstanding} answers are running or queued; try again shortly"
                )
            self._outstanding += 1
            self._pending.append(ask)
            drain = self._draining < self.max_running
            self._draining += drain
        ask.future.add_done_callback(self._finished)
        if drain:
            try:
                self.threads.submit(self._drain)
            except RuntimeError:  # shut down since: shutdown() has failed the ask
                with self._lock:
                    self._draining -= 1
        return ask.future

    def shutdown(self) -> None:
        """Refuse new asks, fail the waiting ones, let the batches under way finish."""
        with self._lock:
            self._closed = True
            left, self._pending = list(self._pending), collections.deque()
        for a in left:
            if a.future.set_running_or_notify_cancel():
                a.future.set_exception(BusyError("the server is shutting down"))
        self.threads.shutdown(wait=True)

    def _finished(self, future: Future[Answer]) -> None:
        with self._lock:
            self._outstanding -= 1

    def _take(self) -> list[PendingAsk] | None:
        """The oldest ask and the waiting asks that can share its batch; None (and this
        drain ends) when none waits."""
        with self._lock:
            while self._pending and self._pending[0].future.cancelled():
                self._pending.popleft()
            if not self._pending:
                self._draining -= 1
                return None
            first = self._pending.popleft()
            batch = [first]
            for ask in list(self._pending):
                if len(batch) >= self.max_batch:
                    break
                if ask.config == first.config and not ask.future.cancelled():
                    batch.append(ask)
                    self._pending.remove(ask)
        # outside the lock: a cancelled ask's callbacks (``_finished``) take it
        return [a for a in batch if a.future.set_running_or_notify_cancel()]

    def _drain(self) -> None:
        """On a batch thread: answer batches until no ask waits."""
        while (batch := self._take()) is not None:
            if batch:
                self._answer_one_batch(batch)

    def _answer_one_batch(self, batch: list[PendingAsk]) -> None:
        self.batch_sizes[len(batch)] += 1

        def on_prefix(i: int, ids: tuple[int, ...]) -> None:
            ask = batch[i]
            if ask.error is None and ask.on_prefix is not None:
                try:
                    ask.on_prefix(0, ids)
                except BaseException as exc:  # this ask's client left: stop its stream only
                    ask.error = exc
            if all(a.error is not None for a in batch):
                raise _AllGone

        try:
            answers = self._answer_batch(
                batch[0].config, [a.question for a in batch], [a.hits for a in batch], on_prefix
            )
        except _AllGone:
            for a in batch:
                a.future.set_exception(a.error or _AllGone())
            return
        except BaseException as exc:
            for a in batch:
                a.future.set_exception(a.error or exc)
            return
        for a, answer in zip(batch, answers, strict=True):
            if a.error is not None:
                a.future.set_exception(a.error)
            else:
                a.future.set_result(answer)
