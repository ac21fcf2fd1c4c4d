"""Asks that wait for the generator are answered together, each with its own answer and stream.

The generator answers on one worker thread (:class:`~mixrag.server.concurrency.SerialWorker`).
While it is busy, new asks queue up; when it is free it takes the oldest ask and every
other waiting ask with the same answering settings (mode, K, beams, decoding, length),
up to ``max_batch``, and answers them in one ``RAG.ask_batch``: one batched decode over
all their passage prompts instead of one after another. A batch costs little more than
its longest member on a CPU, where every forward pass reads all the weights once.

Each ask keeps its own :class:`~concurrent.futures.Future` and its own streaming
callback: the batch's ``on_prefix`` dispatches question i's tokens to ask i, and a
callback that raises (a client that went away) only stops that ask's stream; decoding
stops early only when every ask of the batch is gone. An ask cancelled while queued is
dropped. The queue is bounded in asks: beyond ``max_waiting`` asks running or waiting a
new one is refused at once (:class:`~mixrag.server.concurrency.BusyError`). At most one
drain call waits on the worker at a time (a batch takes asks that had their own calls
queued: counting calls instead of asks refused asks while few waited, measured).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from mixrag.decoding import PrefixFn
from mixrag.rag import Answer, RAGConfig
from mixrag.server.concurrency import BusyError, SerialWorker
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
    """Queues asks and answers compatible ones together on ``worker`` (module docstring).

    ``answer_batch(config, questions, hits, on_prefix)`` answers one batch (the service
    builds a ``RAG`` with ``config`` and calls ``ask_batch``).
    """

    def __init__(
        self,
        worker: SerialWorker,
        answer_batch: AnswerBatch,
        max_batch: int,
        max_waiting: int,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.worker = worker
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self._answer_batch = answer_batch
        self._pending: collections.deque[PendingAsk] = collections.deque()
        self._lock = threading.Lock()
        self._outstanding = 0  # asks running or waiting
        self._scheduled = False  # a drain call waits on the worker
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
            if self._outstanding > self.max_waiting:
                raise BusyError(
                    f"{self._outstanding} answers are running or queued; try again shortly"
                )
            self._outstanding += 1
            self._pending.append(ask)
            schedule = not self._scheduled
            self._scheduled = True
        ask.future.add_done_callback(self._finished)
        if schedule:
            try:
                self.worker.submit(self._drain)
            except BusyError:  # shutting down
                with self._lock:
                    self._scheduled = False
                    if ask in self._pending:
                        self._pending.remove(ask)
                ask.future.cancel()
                raise
        return ask.future

    def _finished(self, future: Future[Answer]) -> None:
        with self._lock:
            self._outstanding -= 1

    def _take(self) -> list[PendingAsk]:
        """The oldest live ask and the waiting asks that can share its batch."""
        with self._lock:
            while self._pending and self._pending[0].future.cancelled():
                self._pending.popleft()
            if not self._pending:
                return []
            first = self._pending.popleft()
            batch = [first]
            for ask in list(self._pending):
                if len(batch) >= self.max_batch:
                    break
                if ask.config == first.config and not ask.future.cancelled():
                    batch.append(ask)
                    self._pending.remove(ask)
        return [a for a in batch if a.future.set_running_or_notify_cancel()]

    def _drain(self) -> None:
        """On the worker thread: answer one batch, then queue the next drain if asks wait."""
        with self._lock:
            self._scheduled = False
        try:
            self._answer_one_batch()
        finally:
            with self._lock:
                again = bool(self._pending) and not self._scheduled
                self._scheduled = self._scheduled or again
            if again:
                try:
                    self.worker.submit(self._drain)
                except BusyError as exc:  # shutting down: the waiting asks end now
                    with self._lock:
                        left, self._pending = list(self._pending), collections.deque()
                    for a in left:
                        if a.future.set_running_or_notify_cancel():
                            a.future.set_exception(exc)

    def _answer_one_batch(self) -> None:
        batch = self._take()
        if not batch:
            return
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
