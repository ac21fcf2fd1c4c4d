"""How one process serves many requests over one index and one generator.

* :class:`ReadWriteLock` guards the index: searches and listings read it together,
  a document upload or removal writes it alone, so a reader sees the index before
  a write or after it, never in between (the store's connection would otherwise show
  a write's uncommitted rows, and FAISS would be searched while it changes).
* the generator runs on one thread, its :class:`~mixrag.generator.engine.StepEngine`'s.
  One thread rather than a lock keeps the model's large, short-lived tensors in one
  malloc arena: with a lock, every request thread that once ran the model kept its own
  arena at peak size (resident memory tripled in a 30-second load test). Whenever the
  engine runs out of work it hands the heap's free pages back to the system
  (:func:`release_free_memory`, glibc's ``malloc_trim``): requests of new shapes leave
  freed blocks behind that would otherwise stay resident, so memory tracks what is in
  use. :class:`BusyError` is the clear refusal of an ask beyond the bounded queue
  (:mod:`mixrag.server.batching`) instead of a pile-up of blocked requests.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


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
