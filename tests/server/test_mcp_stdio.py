"""``mixrag mcp`` over stdio, spawned by the official MCP client SDK as a client app would.

One server process (it loads the bundled encoder and SmolLM2 itself) serves every test
of the module, read-only; the writing tools are tested over HTTP (test_mcp_http.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.server.helpers import MILL_QUESTION, build_index
from tests.server.mcp_client import Session, server_params

from mixrag.server.mcp.config import READ_TOOLS


@pytest.fixture(scope="module")
def stdio(tmp_path_factory: pytest.TempPathFactory, encoder: object) -> Iterator[Session]:
    index = build_index(tmp_path_factory.mktemp("mcp-stdio"), encoder)
    session = Session(server_params(index, "--read-only"))
    session.open()
    yield session
    session.close()


def test_read_only_lists_the_reading_tools_only(stdio: Session) -> None:
    names = {t.name for t in stdio.run("list_tools").tools}
    assert names == set(READ_TOOLS)


def test_search_ask_and_score_over_stdio(stdio: Session) -> None:
    found = stdio.run("call_tool", "search", {"question": MILL_QUESTION, "k": 2})
    assert not found.is_error
    hits = found.structured_content["hits"]
    assert len(hits) == 2 and hits[0]["passage"]["source"].endswith("mill.md")

    answer = stdio.run("call_tool", "ask", {"question": MILL_QUESTION, "mode": "rag-token"})
    assert not answer.is_error
    body = answer.structured_content
    assert body["mode"] == "rag-token" and "1901" in body["answer"] and len(body["passages"]) == 3
    assert sum(p["posterior"] for p in body["passages"]) == pytest.approx(1.0, abs=1e-5)

    scored = stdio.run(
        "call_tool", "score", {"question": MILL_QUESTION, "answer": "1901", "mode": "rag-token"}
    )
    assert not scored.is_error
    terms = scored.structured_content["passages"]
    best = max(terms, key=lambda p: p["posterior"])
    assert best["passage"]["source"].endswith("mill.md")
    assert scored.structured_content["logprob"] < 0
    assert not stdio.transport_errors


def test_a_mistake_is_a_tool_error_and_the_process_lives_on(stdio: Session) -> None:
    bad = stdio.run("call_tool", "ask", {"question": "x" * 201})
    assert bad.is_error and "the limit is 200" in bad.content[0].text
    unknown = stdio.run("call_tool", "remove_document", {"id": "0123456789abcdef"})
    assert unknown.is_error  # not offered in read-only mode
    assert not stdio.run("call_tool", "list_documents", {}).is_error
    assert not stdio.transport_errors
