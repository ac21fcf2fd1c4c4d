"""Many requests at once: asks and searches from threads while documents change."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.server.helpers import MILL_QUESTION, Served

from mixrag.generator.engine import StepEngine
from mixrag.rag import RAGConfig
from mixrag.server.batching import AskBatcher
from mixrag.server.concurrency import BusyError, ReadWriteLock
from mixrag.server.params import resolve
from mixrag.server.streaming import AnswerStream, _ClientGone

NEW_DOC = "The Gullrock lighthouse was built in 1873 on a granite reef off the northern cape."


def test_concurrent_asks_and_searches_while_a_document_is_added_and_removed(
    served: Served,
) -> None:
    c = served.client
    before = {h["passage"]["id"] for h in _hits(served, "Gullrock lighthouse")}
    expected = {
        mode: c.post("/v1/ask", json={"question": MILL_QUESTION, "mode": mode}).json()["answer"]
        for mode in ("rag-token", "concat")
    }
    errors: list[str] = []
    answers: list[tuple[str, str]] = []
    seen: list[set[str]] = []
    stop = threading.Event()

    def asker(mode: str) -> None:
        for _ in range(2):
            r = c.post("/v1/ask", json={"question": MILL_QUESTION, "mode": mode})
            if r.status_code != 200:
                errors.append(r.text)
            else:
                answers.append((mode, r.json()["answer"]))

    def searcher() -> None:
        while not stop.is_set():
            r = c.get("/v1/search", params={"q": "Gullrock lighthouse", "k": 5})
            if r.status_code != 200:
                errors.append(r.text)
                continue
            hits = r.json()["hits"]
            if abs(sum(h["prior"] for h in hits) - 1.0) > 1e-4:
                errors.append(f"priors do not sum to 1: {hits}")
            seen.append({h["passage"]["id"] for h in hits})

    with ThreadPoolExecutor(6) as pool:
        jobs = [pool.submit(asker, m) for m in ("rag-token", "concat", "rag-token")]
        jobs += [pool.submit(searcher) for _ in range(2)]
        time.sleep(0.2)
        up = c.post("/v1/documents", files={"file": ("gullrock.txt", NEW_DOC.encode())})
        assert up.status_code == 201, up.text
        after = {h["passage"]["id"] for h in _hits(served, "Gullrock lighthouse")}
        gone = c.delete(f"/v1/documents/{up.json()['document']['id']}")
        assert gone.status_code == 200
        for job in jobs[:3]:
            job.result()
        stop.set()
        for job in jobs[3:]:
            job.result()

    assert not errors, errors[:3]
    assert len(answers) == 6
    assert all(text == expected[mode] for mode, text in answers)
    assert after != before and seen
    # every search saw the index before the upload, after it, or after the removal
    assert all(s in (before, after) for s in seen), [s for s in seen if s not in (before, after)]


def _hits(served: Served, q: str) -> list[dict[str, Any]]:
    return served.client.get("/v1/search", params={"q": q, "k": 5}).json()["hits"]  # type: ignore[no-any-return]


def test_a_full_queue_answers_503_at_once(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    service = served.client.app.state.service  # type: ignore[attr-defined]
    monkeypatch.setattr(service.batcher, "max_waiting", 0)
    release, busy = _hold_the_generator(service)
    params = resolve(service.config, MILL_QUESTION, mode="rag-token")
    waiting = service.submit_answer(params, service.retrieve(params))  # one ask waits
    try:
        t0 = time.perf_counter()
        r = served.client.post("/v1/ask", json={"question": MILL_QUESTION})
        assert r.status_code == 503 and r.headers["retry-after"]
        assert r.json()["error"] == "busy" and time.perf_counter() - t0 < 5
        r = served.client.post("/v1/ask", json={"question": MILL_QUESTION, "stream": True})
        assert r.status_code == 503
        with pytest.raises(BusyError):
            service.submit_answer(params, service.retrieve(params))
    finally:
        release.set()
        busy.result()
    assert waiting.result(120).text
    assert served.client.post("/v1/ask", json={"question": MILL_QUESTION}).status_code == 200


def test_a_client_that_leaves_frees_the_generator(served: Served) -> None:
    service = served.client.app.state.service  # type: ignore[attr-defined]
    params = resolve(service.config, MILL_QUESTION, mode="rag-token", max_new_tokens=12)
    hits = service.retrieve(params)

    async def leave_early() -> list[str]:
        stream = AnswerStream(service, params, hits).events()
        got = [await stream.__anext__(), await stream.__anext__()]  # passages, first token
        await stream.aclose()
        return got

    got = asyncio.run(leave_early())
    assert got[0].startswith("event: passages") and got[1].startswith("event: token")
    deadline = time.time() + 10
    while service.batcher.pending and time.time() < deadline:
        time.sleep(0.05)
    assert service.batcher.pending == 0
    assert service.answer(params, hits).text  # the generator still works


def test_a_client_that_leaves_before_any_token_stops_its_answer(served: Served) -> None:
    service = served.client.app.state.service  # type: ignore[attr-defined]
    params = resolve(service.config, MILL_QUESTION, mode="rag-token", max_new_tokens=12)
    hits = service.retrieve(params)

    async def leave_after_the_passages() -> tuple[AnswerStream, str]:
        stream = AnswerStream(service, params, hits)
        events = stream.events()
        first = await events.__anext__()
        await events.aclose()
        return stream, first

    stream, first = asyncio.run(leave_after_the_passages())
    assert first.startswith("event: passages")
    # dropped from the queue (cancelled) or stopped at its next step: never answered
    with pytest.raises((concurrent.futures.CancelledError, _ClientGone)):
        stream._future.result(60)
    assert service.answer(params, hits).text  # the generator still works


def test_read_write_lock_excludes_writers_from_readers() -> None:
    lock = ReadWriteLock()
    log: list[str] = []
    readers_in = threading.Barrier(3)

    def reader() -> None:
        with lock.read():
            readers_in.wait(5)  # both readers inside at once
            log.append("r")
            time.sleep(0.05)

    def writer() -> None:
        with lock.write():
            log.append("w-in")
            time.sleep(0.05)
            log.append("w-out")

    rs = [threading.Thread(target=reader) for _ in range(2)]
    for t in rs:
        t.start()
    readers_in.wait(5)
    w = threading.Thread(target=writer)
    w.start()
    for t in [*rs, w]:
        t.join(5)
    assert log == ["r", "r", "w-in", "w-out"] or log[:2] == ["r", "r"]
    assert log.index("w-in") > 1


def _take_turns(lock: ReadWriteLock, stream: str, n: int) -> int:
    """Two threads take ``stream``'s side of the lock back to back, ``n`` times each
    (holding it 5 ms), while one thread of the other side asks once: how many holds
    of the stream came between its asking and its getting the lock."""
    log: list[str] = []
    started = threading.Event()
    asked = -1

    def busy() -> None:
        for _ in range(n):
            with lock.write() if stream == "w" else lock.read():
                log.append(stream)
                started.set()
                time.sleep(0.005)

    def once() -> None:
        nonlocal asked
        asked = len(log)
        with lock.read() if stream == "w" else lock.write():
            log.append("once")

    threads = [threading.Thread(target=busy) for _ in range(2)]
    for t in threads:
        t.start()
    started.wait(5)
    time.sleep(0.02)
    threads.append(threading.Thread(target=once))
    threads[-1].start()
    for t in threads:
        t.join(10)
    return log.index("once") - asked


def test_back_to_back_writers_do_not_starve_a_reader() -> None:
    # Two clients uploading without a pause kept every search waiting until both
    # stopped (bench/crash_loop.py: no search answered in three cycles of uploads).
    assert _take_turns(ReadWriteLock(), "w", 100) <= 3


def test_a_stream_of_readers_does_not_starve_a_writer() -> None:
    assert _take_turns(ReadWriteLock(), "r", 100) <= 3


def test_the_batcher_runs_batches_side_by_side_and_bounds_its_queue() -> None:
    inside = threading.Semaphore(0)
    release = threading.Event()
    seen: list[tuple[str, ...]] = []
    threads: set[int] = set()

    def answer_batch(config: Any, questions: Any, hits: Any, on_prefix: Any) -> list[Any]:
        seen.append(tuple(questions))
        threads.add(threading.get_ident())
        inside.release()
        release.wait(5)
        return [f"answer to {q}" for q in questions]

    batcher = AskBatcher(answer_batch, max_batch=8, max_waiting=4, max_running=2)
    cfg, other = RAGConfig(mode="rag-token"), RAGConfig(mode="concat")
    first = batcher.submit(cfg, "q1", [])
    second = batcher.submit(other, "q2", [])
    assert inside.acquire(timeout=5) and inside.acquire(timeout=5)  # two batches at once
    waiting = [batcher.submit(cfg, q, []) for q in ("q3", "q4")]
    dropped = batcher.submit(cfg, "q5", [])
    assert dropped.cancel() and batcher.pending == 4 and not batcher.full
    batcher.submit(other, "q6", [])
    assert batcher.full
    with pytest.raises(BusyError):
        batcher.submit(cfg, "q7", [])
    release.set()
    assert [f.result(5) for f in (first, second, *waiting)] == [
        f"answer to {q}" for q in ("q1", "q2", "q3", "q4")
    ]
    assert ("q3", "q4") in seen and not any("q5" in b for b in seen)  # waited together
    assert len(threads) == 2 and threading.get_ident() not in threads
    batcher.shutdown()
    with pytest.raises(BusyError, match="shutting down"):
        batcher.submit(cfg, "late", [])
    assert batcher.pending == 0


def test_the_engine_returns_free_heap_pages_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    from mixrag.server import concurrency

    trims: list[int] = []
    monkeypatch.setattr(concurrency, "_MALLOC_TRIM", lambda pad: trims.append(pad) or 1)
    engine = StepEngine(None, on_idle=concurrency.release_free_memory)  # type: ignore[arg-type]
    try:
        assert engine.run(lambda x: x * 2, 21) == 42
        with pytest.raises(ValueError, match="bad"):
            engine.run(lambda: (_ for _ in ()).throw(ValueError("bad")))
        deadline = time.time() + 5
        while len(trims) < 2 and time.time() < deadline:
            time.sleep(0.01)
        assert trims == [0, 0]  # after the call that failed too
        time.sleep(0.05)
        assert trims == [0, 0]  # not again while idle
    finally:
        engine.close()
    monkeypatch.setattr(concurrency, "_MALLOC_TRIM", None)
    assert concurrency.release_free_memory() is False


QUESTIONS = (MILL_QUESTION, "What did Nikola Tesla design?", "What does the Amazon cover?")


def _hold_the_generator(service: Any) -> tuple[threading.Event, Any]:
    """Occupy every batch thread, so asks submitted now wait (and batch) until released."""
    release = threading.Event()
    threads = service.batcher.threads
    held = [threads.submit(release.wait, 30) for _ in range(service.batcher.max_running)]
    return release, _All(held)


class _All:
    def __init__(self, futures: list[Any]) -> None:
        self.futures = futures

    def result(self, timeout: float | None = None) -> None:
        for f in self.futures:
            f.result(timeout)


@pytest.mark.parametrize("mode", ["rag-token", "rag-sequence", "concat"])
def test_asks_that_wait_together_are_batched_and_each_gets_its_own_answer(
    served: Served, mode: str
) -> None:
    service = served.client.app.state.service  # type: ignore[attr-defined]
    params = [resolve(service.config, q, mode=mode) for q in QUESTIONS]
    hits = [service.retrieve(p) for p in params]
    alone = [service.answer(p, h) for p, h in zip(params, hits, strict=True)]
    sizes = dict(service.batcher.batch_sizes)
    streamed: dict[int, list[tuple[int, ...]]] = {i: [] for i in range(3)}

    def stream_to(i: int) -> Any:
        return lambda q, ids: streamed[i].append(ids)

    release, blocker = _hold_the_generator(service)
    futures = [
        service.submit_answer(p, h, stream_to(i))
        for i, (p, h) in enumerate(zip(params, hits, strict=True))
    ]
    release.set()
    blocker.result(5)
    got = [f.result(120) for f in futures]
    assert service.batcher.batch_sizes[3] == sizes.get(3, 0) + 1  # all three in one batch
    for g, a, s in zip(got, alone, streamed.values(), strict=True):
        assert g.text == a.text and g.token_ids == a.token_ids
        assert g.logprob == pytest.approx(a.logprob, abs=1e-4)
        for c, d in zip(g.citations, a.citations, strict=True):
            assert c.hit.passage.id == d.hit.passage.id
            assert c.posterior == pytest.approx(d.posterior, abs=1e-4)
        assert s  # its own stream
        if mode != "rag-sequence":  # greedy and final: the stream ends with the answer
            assert tuple(s[-1]) == g.token_ids[: len(s[-1])] and len(s[-1]) >= len(g.token_ids) - 1


def test_a_client_leaving_a_batch_stops_only_its_own_answer(served: Served) -> None:
    service = served.client.app.state.service  # type: ignore[attr-defined]
    params = [resolve(service.config, q, mode="rag-token") for q in QUESTIONS[:2]]
    hits = [service.retrieve(p) for p in params]

    class Gone(Exception):
        pass

    def leave(q: int, ids: tuple[int, ...]) -> None:
        raise Gone

    release, _blocker = _hold_the_generator(service)
    leaving = service.submit_answer(params[0], hits[0], leave)
    staying = service.submit_answer(params[1], hits[1], lambda q, ids: None)
    concat = resolve(service.config, QUESTIONS[2], mode="concat")
    other_mode = service.submit_answer(concat, hits[1])
    release.set()
    with pytest.raises(Gone):
        leaving.result(120)
    assert staying.result(120).text == service.answer(params[1], hits[1]).text
    assert other_mode.result(120).mode == "concat"  # not in the rag-token batch


def test_many_asks_answered_in_batches_leave_no_stale_count(served: Served) -> None:
    # a batch takes asks whose own drain calls are still queued: the bound counts asks
    service = served.client.app.state.service  # type: ignore[attr-defined]
    params = resolve(service.config, MILL_QUESTION, mode="rag-token", max_new_tokens=4)
    hits = service.retrieve(params)
    for _round in range(3):
        release, blocker = _hold_the_generator(service)
        futures = [service.submit_answer(params, hits) for _ in range(4)]
        assert service.batcher.pending == 4
        release.set()
        blocker.result(5)
        assert len({f.result(120).text for f in futures}) == 1
        deadline = time.time() + 10
        while service.batcher.pending and time.time() < deadline:
            time.sleep(0.02)
        assert service.batcher.pending == 0
