"""How one process serves many requests over one index and one generator.

* :class:`ReadWriteLock` guards the index: searches and listings read it together,
  a document upload or removal writes it alone, so a reader sees the index before
  a write or after it, never in between (the store's connection would otherwise show
  a write's uncommitted rows, and FAISS would be searched while it changes).
* :class:`SerialWorker` runs the generator, which keeps decoding state (KV caches)
  on itself: one dedicated thread takes answers one at a time in arrival order,
  with a bounded queue and a clear refusal beyond it instead of a pile-up of
  blocked requests. One thread rather than a lock also keeps the model's large,
  short-lived tensors in one malloc arena: with a lock, every request thread that
  once ran the model kept its own arena at peak size (resident memory tripled in
  a 30-second load test). After each call the worker hands the heap's free pages
  back to the system (glibc's ``malloc_trim``): requests of new shapes leave freed
  blocks behind that would otherwise stay resident, so memory tracks what is in use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; False where that is not possible."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


class ReadWriteLock:
    """Many readers or one writer, taking turns: neither side can starve the other.

    A waiting writer goes before readers that come later, so a stream of searches
    cannot starve an upload; and the readers that waited through a write go before
    the next writer, so uploads sent back to back cannot starve searches (with only
    the first rule, two clients uploading without a pause kept every search waiting
    until both stopped).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._readers_waiting = 0
        # readers let in ahead of waiting writers: as many as a write held up
        # (never more than are waiting, so a waiting writer always gets its turn)
        self._admit = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            self._readers_waiting += 1
            try:
                while self._writer or (self._writers_waiting and not self._admit):
                    self._cond.wait()
            except BaseException:  # interrupted while waiting: it may have been admitted
                self._readers_waiting -= 1
                self._admit = min(self._admit, self._readers_waiting)
                self._cond.notify_all()
                raise
            self._readers_waiting -= 1
            self._admit = max(0, self._admit - 1)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers or self._admit:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._admit = self._readers_waiting
                self._cond.notify_all()


class BusyError(Exception):
    """More requests wait for the generator than the server queues."""


class SerialWorker:
    """One thread that runs submitted calls in order; at most ``max_waiting`` wait their turn."""

    def __init__(
        self, max_waiting: int, name: str = "mixrag-generator", trim_memory: bool = True
    ) -> None:
        self.max_waiting = max_waiting
        self.trim_memory = trim_memory
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._count = threading.Lock()
        self._inside = 0  # running or waiting

    @property
    def pending(self) -> int:
        """Calls running or waiting."""
        return self._inside

    @property
    def full(self) -> bool:
        """True when a call submitted now would be refused."""
        return self._inside > self.max_waiting

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Queue ``fn(*args)``; raises :class:`BusyError` at once if the queue is full."""
        with self._count:
            if self._inside > self.max_waiting:
                raise BusyError(f"{self._inside} answers are running or queued; try again shortly")
            self._inside += 1
        try:
            future = self._executor.submit(self._call, fn, *args)
        except RuntimeError:  # shut down
            self._done(None)
            raise BusyError("the server is shutting down") from None
        future.add_done_callback(self._done)  # also when cancelled while queued
        return future

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        finally:
            if self.trim_memory:
                release_free_memory()

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the worker thread, waiting for it (and for the calls before it)."""
        return self.submit(fn, *args).result()

    def _done(self, future: Future[Any] | None) -> None:
        with self._count:
            self._inside -= 1

    def shutdown(self) -> None:
        """Finish the running call, drop the queued ones, stop the thread."""
        self._executor.shutdown(wait=True, cancel_futures=True)
