"""Continuous batching: decodes running on many threads share every forward pass.

A decode step on a CPU costs about one read of the weights, whatever the number of
rows (Qwen2.5-0.5B in bfloat16 on two Xeon cores: 75 ms for 5 rows, 108 ms for 25), so
answers decoded together cost little more than one alone. Batching whole requests
(one ``RAG.ask_batch`` for asks that waited together) leaves an ask that arrives
mid-batch waiting for that batch to finish. Here it waits one step instead.

:class:`StepEngine` owns the model: one thread runs every forward pass. Each decoder
runs on its own thread, inside a :class:`EngineSession` (a
:class:`~mixrag.generator.base.StepGenerator`), unchanged: its ``start`` prefills its
prompts on the engine thread and appends the rows to the merged
:class:`~mixrag.generator.decode_state.HFDecodeState` of its *lane*; its state's
``advance`` posts the step and waits. When every running decode has posted, the engine
re-orders each lane's merged rows (each decode's own re-order, offset to its rows;
finished decodes' rows dropped) and runs one forward pass a lane. Prefills and
``logprobs`` calls run between steps, in arrival order.

A lane holds the decodes whose prompts share one head (instruction and few-shot turns,
kept once: :mod:`~mixrag.generator.shared_attention`). RAG-Sequence and RAG-Token rows
share the passage prompt's head; concat's prompt has its own. Merged into one state,
every row would carry a copy of its head and be padded to concat's width (~1,050
columns against ~150 of its own for a RAG row), and the server stayed that way as long
as any concat decode ran: every join, re-order and appended token copied it. A lane
per head costs one more forward pass a step while both run (DESIGN "A lane per head").

Exactness: rows are placed side by side, left-padded to a common width (masked, with
explicit positions), so each decode reads the distributions it would read alone, up
to the float rounding of a different batch shape (tests/generator/test_engine.py).

A session holds at most one live decode: starting another, scoring, or leaving the
session ends the previous one (decoders use one state at a time). A decode whose
thread has not posted holds the step back, so sessions must end (``with`` block).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from mixrag.generator.base import TokenLogprobs

if TYPE_CHECKING:
    from mixrag.generator.decode_state import HFDecodeState
    from mixrag.generator.hf import TransformersGenerator

log = logging.getLogger(__name__)

T = TypeVar("T")


class EngineClosed(RuntimeError):
    """The engine was shut down; no further work is accepted."""


@dataclass
class EngineStats:
    """What the engine has done: steps, and how many decodes shared each (a histogram);
    calls (prefills, scoring passes) and how many more were waiting when each began; the
    seconds spent in each kind of work."""

    steps: int = 0
    forwards: int = 0  # a step runs one forward pass per lane (shared head)
    calls: int = 0
    rows: int = 0
    step_seconds: float = 0.0
    call_seconds: float = 0.0
    decodes_per_step: collections.Counter[int] = field(default_factory=collections.Counter)
    calls_waiting: collections.Counter[int] = field(default_factory=collections.Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "forwards": self.forwards,
            "calls": self.calls,
            "mean_rows_per_step": round(self.rows / self.steps, 2) if self.steps else 0.0,
            "step_seconds": round(self.step_seconds, 2),
            "call_seconds": round(self.call_seconds, 2),
            "decodes_per_step": {str(n): c for n, c in sorted(self.decodes_per_step.items())},
            "calls_waiting": {str(n): c for n, c in sorted(self.calls_waiting.items())},
        }


class _Decode:
    """One decoder's rows of the merged state: a :class:`DecodeState` for its thread."""

    def __init__(self, engine: StepEngine, rows: int, logprobs: torch.Tensor) -> None:
        self._engine = engine
        self.rows = rows
        self._logprobs = logprobs
        self.posted: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.alive = True

    @property
    def num_rows(self) -> int:
        return self.rows

    def logprobs(self) -> torch.Tensor:
        """[N, V] float32 log-distribution of every row's next token."""
        return self._logprobs

    def advance(self, tokens: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """Post this decode's step and wait for the shared forward pass that runs it."""
        if not self.alive:
            raise RuntimeError("this decode has ended (its session started another or closed)")
        tokens = torch.as_tensor(tokens, dtype=torch.long).flatten()
        if rows is not None:
            rows = torch.as_tensor(rows, dtype=torch.long)
            if rows.ndim != 1 or (rows.numel() and (rows.min() < 0 or rows.max() >= self.rows)):
                raise ValueError(
                    f"rows must be a 1-D index into 0..{self.rows - 1}, got {rows.tolist()}"
                )
        expect = self.rows if rows is None else int(rows.numel())
        if tokens.numel() != expect:
            raise ValueError(f"need one token per row ({expect}), got shape {tuple(tokens.shape)}")
        self.done.clear()
        self._engine._post(self, tokens, rows)
        self.done.wait()
        if self.error is not None:
            self.alive = False
            raise self.error

    def _stepped(self, logprobs: torch.Tensor) -> None:
        self._logprobs = logprobs
        self.rows = int(logprobs.shape[0])
        self.posted = None
        self.done.set()

    def _failed(self, error: BaseException) -> None:
        self.error = error
        self.posted = None
        self.done.set()


@dataclass
class _Lane:
    """Decodes whose rows continue one shared head, merged into one state (their rows in
    ``decodes`` order). Rows of two heads would each need a copy of theirs, so decodes
    of another head (concat's, beside RAG's) step in a lane of their own."""

    state: HFDecodeState | None  # None once every row is gone (decodes may stay, 0 rows)
    decodes: list[_Decode] = field(default_factory=list)


@dataclass
class _Call:
    fn: Callable[[], Any]
    future: Future[Any] = field(default_factory=Future)


class StepEngine:
    """Runs a generator's forward passes on one thread, merging concurrent decodes.

    ``on_idle`` is called on the engine thread whenever it runs out of work, after every
    call (a prefill or a scoring pass: the large, short-lived tensors) and every
    ``idle_every`` steps (e.g. to hand freed memory back to the system).
    """

    def __init__(
        self,
        generator: TransformersGenerator,
        *,
        on_idle: Callable[[], Any] | None = None,
        idle_every: int = 25,
        name: str = "mixrag-engine",
    ) -> None:
        self.generator = generator
        self.stats = EngineStats()
        self._on_idle = on_idle
        self._idle_every = idle_every
        self._cond = threading.Condition(threading.Lock())
        self._calls: collections.deque[_Call] = collections.deque()
        self._lanes: list[_Lane] = []  # one merged state per shared head
        self._vocab = 0  # the model's, once a prefill has run
        self._closed = False
        self._worked = False  # since the last on_idle
        self._threads = torch.get_num_threads()  # the constructing thread's, for the model
        started = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(started,), name=name, daemon=True)
        self._thread.start()
        started.wait()

    # ------------------------------------------------------------------ public

    def session(self) -> EngineSession:
        """A StepGenerator for one thread's decodes (use it as a context manager)."""
        return EngineSession(self)

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the engine thread between steps, waiting for its result."""
        if threading.current_thread() is self._thread:
            return fn(*args)
        call = _Call(lambda: fn(*args))
        with self._cond:
            if self._closed:
                raise EngineClosed("the generator engine is shut down")
            self._calls.append(call)
            self._cond.notify_all()
        result: T = call.future.result()
        return result

    @property
    def running(self) -> int:
        """Decodes holding rows in a lane's merged state."""
        return sum(d.alive for lane in self._lanes for d in lane.decodes)

    def close(self) -> None:
        """Finish the work under way, refuse new work, stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    # ---------------------------------------------------------------- sessions

    def _start(self, prompts: Sequence[str]) -> _Decode:
        def prefill() -> _Decode:
            state = self.generator.start(prompts)
            decode = _Decode(self, state.num_rows, state.logprobs())
            self._vocab = int(state.logprobs().shape[-1])
            for lane in self._lanes:  # the lane of this head, if one is decoding
                if lane.state is not None and lane.state.same_head(state):
                    lane.state.extend(state)
                    with self._cond:
                        lane.decodes.append(decode)
                    return decode
            with self._cond:
                self._lanes.append(_Lane(state, [decode]))
            return decode

        return self.run(prefill)

    def _end(self, decode: _Decode) -> None:
        with self._cond:
            decode.alive = False
            self._cond.notify_all()  # it no longer holds the step back

    def _post(self, decode: _Decode, tokens: torch.Tensor, rows: torch.Tensor | None) -> None:
        with self._cond:
            if self._closed:
                raise EngineClosed("the generator engine is shut down")
            decode.posted = (tokens, rows)
            self._cond.notify_all()

    # ---------------------------------------------------------------- the loop

    def _ready(self) -> bool:
        """Every live decode has posted its step (and one at least is live)."""
        live = [d for lane in self._lanes for d in lane.decodes if d.alive]
        return bool(live) and all(d.posted is not None for d in live)

    def _loop(self, started: threading.Event) -> None:
        # OpenMP's thread count is per thread, taken from torch's process-wide setting
        # when a thread first asks; fix this one's now, whatever others set later
        # (decoding threads set 1: :func:`decoding_thread_setup`).
        torch.get_num_threads()
        torch.set_num_threads(self._threads)
        started.set()
        while True:
            with self._cond:
                while not (self._calls or self._ready()):
                    if self._closed:
                        self._fail_all(EngineClosed("the generator engine is shut down"))
                        return
                    if not self.running:
                        self._release()
                    self._cond.wait()
                call = self._calls.popleft() if self._calls else None
                if call is not None:
                    self.stats.calls_waiting[len(self._calls)] += 1
                batch = None if call is not None else [(ln, list(ln.decodes)) for ln in self._lanes]
                self._worked = self._worked or call is None  # a call trims after itself
            began = time.perf_counter()
            if call is not None:
                self.stats.calls += 1
                try:
                    call.future.set_result(call.fn())
                except BaseException as exc:  # the caller gets it
                    call.future.set_exception(exc)
                self.stats.call_seconds += time.perf_counter() - began
                if self._on_idle is not None:
                    self._on_idle()
            else:
                assert batch is not None
                self._step(batch)
                self.stats.step_seconds += time.perf_counter() - began

    def _release(self) -> None:
        """With no live decode, drop the lanes' merged states and, after any work since the last
        time, call ``on_idle`` (lock held)."""
        self._lanes = []
        if self._worked and self._on_idle is not None:
            self._on_idle()
        self._worked = False

    def _step(self, batch: list[tuple[_Lane, list[_Decode]]]) -> None:
        """One forward pass per lane for every live decode in ``batch`` (all have posted)."""
        rows = decodes = forwards = 0
        for lane, lane_batch in batch:
            stepped = self._step_lane(lane, lane_batch)
            if stepped is not None:
                rows, decodes, forwards = rows + stepped[0], decodes + stepped[1], forwards + 1
        with self._cond:  # a lane left with no rows starts afresh with its next decode
            self._lanes = [ln for ln in self._lanes if ln.decodes]
        if not forwards:
            return
        self.stats.steps += 1
        self.stats.forwards += forwards
        self.stats.rows += rows
        self.stats.decodes_per_step[decodes] += 1
        if self._on_idle is not None and self.stats.steps % self._idle_every == 0:
            self._on_idle()

    def _step_lane(self, lane: _Lane, batch: list[_Decode]) -> tuple[int, int] | None:
        """One forward pass for the live decodes of one lane; (rows, decodes) it ran, or
        None when there was nothing to run or the pass failed (its decodes then end)."""
        index: list[torch.Tensor] = []
        tokens: list[torch.Tensor] = []
        kept: list[tuple[_Decode, int]] = []  # (decode, its new row count)
        offset = 0
        for d in batch:
            posted = d.posted
            if d.alive and posted is not None:
                toks, rows = posted
                local = torch.arange(d.rows) if rows is None else rows
                index.append(local + offset)
                tokens.append(toks)
                kept.append((d, int(local.numel())))
            offset += d.rows
        # Only this thread adds decodes (in a prefill), so none joined since ``batch``.
        if not sum(n for _, n in kept):  # nothing to run: every live decode posted 0 rows
            with self._cond:  # no row is left: a decode of this head starts a new lane
                lane.state = None
                lane.decodes = [d for d, _ in kept]
            for d, _ in kept:
                d._stepped(torch.zeros(0, self._vocab))
            return None
        assert lane.state is not None  # a lane without a state has no rows
        try:
            lane.state.advance(torch.cat(tokens), torch.cat(index))
            lane.state.trim()
        except BaseException as exc:
            log.exception("a shared decoding step failed")
            with self._cond:
                for d in lane.decodes:
                    if d.alive:
                        d._failed(exc)
                    d.alive = False
                lane.decodes = []
            return None
        lp = lane.state.logprobs()
        with self._cond:
            lane.decodes = [d for d, _ in kept]
        at = 0
        for d, n in kept:
            d._stepped(lp[at : at + n])
            at += n
        return int(lp.shape[0]), len(kept)

    def _fail_all(self, error: BaseException) -> None:
        """End every decode with ``error`` and drop the merged states (lock held)."""
        for lane in self._lanes:
            for d in lane.decodes:
                if d.alive:
                    d._failed(error)
                d.alive = False
        self._lanes = []
        while self._calls:
            self._calls.popleft().future.set_exception(error)


def decoding_thread_setup() -> None:
    """For the threads that run decoders against an engine: one OpenMP thread each.

    Their own tensor work (candidate selection, the mixture of a step's distributions)
    is small; with the process's thread count every one of them would start its own
    OpenMP team beside the engine's forward pass and oversubscribe the cores.
    """
    torch.set_num_threads(1)


class EngineSession:
    """One thread's view of a :class:`StepEngine`: a StepGenerator whose forward passes the
    engine runs, merged with other sessions' decodes. Holds one live decode at a time."""

    def __init__(self, engine: StepEngine) -> None:
        self.engine = engine
        self._decode: _Decode | None = None

    def start(self, prompts: Sequence[str]) -> _Decode:
        """Prefill ``prompts`` (on the engine thread) and join the shared decode."""
        self._end()
        self._decode = self.engine._start(prompts)
        return self._decode

    def logprobs(
        self, prompts: Sequence[Sequence[str]], answers: Sequence[Sequence[int]]
    ) -> TokenLogprobs:
        """The generator's ``logprobs``, run on the engine thread between steps."""
        self._end()
        return self.engine.run(self.engine.generator.logprobs, prompts, answers)

    def _end(self) -> None:
        if self._decode is not None:
            self.engine._end(self._decode)
            self._decode = None

    def close(self) -> None:
        """End this session's decode (its rows leave the merged state at the next step)."""
        self._end()

    def __enter__(self) -> EngineSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
