"""The HTTP API end to end: real encoder and SmolLM2 on a three-document index."""

from __future__ import annotations

import math
from typing import get_args

import pytest
from tests.server.helpers import MILL_QUESTION, Served, sse_events

from mixrag.rag import MODES, SEQUENCE_DECODING
from mixrag.retriever.retriever import METHODS
from mixrag.server.schemas import Decoding, Method, Mode


def test_health_info_and_the_page(served: Served) -> None:
    c = served.client
    assert c.get("/healthz").json() == {"status": "ok"}
    info = c.get("/v1/info").json()
    assert info["index"]["documents"] == 3 and info["index"]["passages"] == 3
    assert info["limits"]["max_k"] == 5 and info["defaults"]["k"] == 3
    assert info["defaults"]["k_by_mode"] == dict.fromkeys(MODES, 3)  # k given: every mode's
    assert info["defaults"]["beams_by_mode"] == {
        "rag-sequence": 2,
        "rag-token": 1,
        "concat": 1,
        "closed-book": 1,
    }
    assert info["generator"]["model"] == "smollm2-135m"
    assert ".md" in info["extensions"] and info["auth"] is False
    page = c.get("/")
    assert page.status_code == 200 and '<textarea id="question"' in page.text
    assert c.get("/static/app.js").status_code == 200
    schema = c.get("/openapi.json").json()
    assert {"/v1/ask", "/v1/search", "/v1/documents", "/healthz"} <= set(schema["paths"])
    assert c.get("/docs").status_code == 200


def test_the_request_schema_matches_the_library() -> None:
    assert get_args(Mode) == MODES
    assert get_args(Method) == METHODS
    assert get_args(Decoding) == SEQUENCE_DECODING


@pytest.mark.parametrize("method", ["dense", "bm25", "hybrid"])
def test_search_ranks_the_right_passage_first(served: Served, method: str) -> None:
    r = served.client.get("/v1/search", params={"q": MILL_QUESTION, "k": 3, "method": method})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == method and 1 <= len(body["hits"]) <= 3  # BM25: matching only
    assert body["hits"][0]["passage"]["source"].endswith("mill.md")
    assert sum(h["prior"] for h in body["hits"]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_ask_reports_answer_prior_and_posterior(served: Served, mode: str) -> None:
    r = served.client.post("/v1/ask", json={"question": MILL_QUESTION, "mode": mode})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["mode"] == mode and a["answer"]
    assert math.isfinite(a["logprob"]) and a["logprob"] < 0
    assert len(a["passages"]) == 3
    assert sum(p["prior"] for p in a["passages"]) == pytest.approx(1.0, abs=1e-5)
    assert sum(p["posterior"] for p in a["passages"]) == pytest.approx(1.0, abs=1e-5)
    if mode in ("rag-sequence", "rag-token"):
        assert "1901" in a["answer"]
        best = max(a["passages"], key=lambda p: p["posterior"])
        assert best["passage"]["source"].endswith("mill.md")


def _stream(served: Served, **body: object) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    r = served.client.post(
        "/v1/ask",
        json={"question": MILL_QUESTION, **body},
        headers={"Accept": "text/event-stream"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    return sse_events(r.text)


@pytest.mark.parametrize("mode", ["rag-token", "concat", "closed-book"])
def test_greedy_modes_stream_the_answer_itself(served: Served, mode: str) -> None:
    events = _stream(served, mode=mode)
    names = [n for n, _ in events]
    assert names[0] == "passages" and names[-1] == "answer"
    assert set(names[1:-1]) == {"token"}
    assert events[0][1]["provisional"] is False and len(events[0][1]["passages"]) == 3
    tokens = [d for n, d in events if n == "token"]
    assert tokens and not any(t["provisional"] for t in tokens)
    # the deltas add up to the text, each step extends the last, and it ends at the answer
    assert "".join(t["delta"] for t in tokens) == tokens[-1]["text"]
    final = events[-1][1]
    assert tokens[-1]["text"] == final["answer"]
    assert sum(p["posterior"] for p in final["passages"]) == pytest.approx(1.0, abs=1e-5)
    same = served.client.post("/v1/ask", json={"question": MILL_QUESTION, "mode": mode}).json()
    assert same["answer"] == final["answer"]  # streaming changes nothing about the answer


def test_rag_sequence_streams_a_provisional_leader_then_the_decided_answer(
    served: Served,
) -> None:
    events = _stream(served, mode="rag-sequence", stream=True)
    assert events[0][0] == "passages" and events[0][1]["provisional"] is True
    tokens = [d for n, d in events if n == "token"]
    assert tokens and all(t["provisional"] for t in tokens)
    name, final = events[-1]
    assert name == "answer" and "1901" in final["answer"]
    assert all(p["posterior"] is not None for p in final["passages"])


def test_stream_true_in_the_body_also_streams(served: Served) -> None:
    r = served.client.post(
        "/v1/ask", json={"question": MILL_QUESTION, "mode": "concat", "stream": True}
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    assert sse_events(r.text)[-1][0] == "answer"


def test_beam_search_streams_provisionally(served: Served) -> None:
    events = _stream(served, mode="rag-token", beams=2, max_new_tokens=6)
    assert events[0][1]["provisional"] is True
    assert events[-1][0] == "answer"


def test_ask_says_whether_the_documents_support_the_answer(served: Served) -> None:
    body = {"question": MILL_QUESTION, "mode": "rag-sequence"}
    low = served.client.post("/v1/ask", json={**body, "min_confidence": 1.0}).json()
    high = served.client.post("/v1/ask", json={**body, "min_confidence": 0.0}).json()
    assert low["supported"] is False and high["supported"] is True
    assert low["min_confidence"] == 1.0 and high["min_confidence"] == 0.0
    # the same answer and evidence either way: the threshold only judges it
    assert low["answer"] == high["answer"] and "1901" in low["answer"]
    assert low["gain"] == pytest.approx(high["gain"], abs=1e-4) and low["gain"] > 1.0
    default = served.client.post("/v1/ask", json=body).json()
    assert default["min_confidence"] == served.config.min_confidence
    assert default["supported"] == (default["probability"] >= served.config.min_confidence)
    r = served.client.post("/v1/ask", json={**body, "min_confidence": 1.5})
    assert r.status_code == 422 and "min_confidence" in r.text
    # the retriever's test: the best passage's inner product with the question
    assert default["min_relevance"] == served.config.min_relevance
    passages = [p["dense"] if p["dense"] is not None else p["score"] for p in default["passages"]]
    assert default["relevance"] == pytest.approx(max(passages), abs=1e-6)
    off = {**body, "min_confidence": 0.0, "min_relevance": default["relevance"] + 0.01}
    far = served.client.post("/v1/ask", json=off).json()
    assert far["supported"] is False and far["answer"] == default["answer"]
    on = {**off, "min_relevance": default["relevance"]}
    assert served.client.post("/v1/ask", json=on).json()["supported"] is True
    # a request turns the test off with "off" (left out, it is the server's)
    unset = served.client.post("/v1/ask", json={**off, "min_relevance": "off"}).json()
    assert unset["min_relevance"] is None and unset["supported"] is True
    r = served.client.post("/v1/ask", json={**off, "min_relevance": "on"})
    assert r.status_code == 422 and "min_relevance" in r.text
    # other answers ranked below, on request
    assert default["alternatives"] == []
    alts = served.client.post("/v1/ask", json={**body, "alternatives": 2}).json()
    assert alts["answer"] == default["answer"] and len(alts["alternatives"]) <= 2
    for x in alts["alternatives"]:
        assert x["answer"] != alts["answer"] and x["logprob"] <= alts["logprob"] + 1e-6
    r = served.client.post("/v1/ask", json={**body, "alternatives": 11})
    assert r.status_code == 422 and "alternatives: must be in 1..10" in r.text
