"""``mixrag mcp`` over stdio, spawned by the official MCP client SDK as a client app would.

One server process (it loads the bundled encoder and SmolLM2 itself) serves every test
of the module, read-only; the writing tools are tested over HTTP (test_mcp_http.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.server.helpers import MILL_QUESTION, build_index

from mixrag.server.mcp.config import READ_TOOLS

ENV = ("PYTHONPATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "CI")


def server_params(index: Path, *options: str) -> Any:
    from mcp import StdioServerParameters

    args = ["-m", "mixrag.cli.main", "--threads", "1", "mcp", "--index", str(index)]
    args += ["--model", "smollm2-135m", "-k", "3", "--max-k", "5", "--max-question-chars", "200"]
    env = {name: os.environ[name] for name in ENV if name in os.environ}
    return StdioServerParameters(
        command=sys.executable, args=[*args, *options], env={**env, "OMP_NUM_THREADS": "1"}
    )


class Session:
    """One MCP client session with a spawned ``mixrag mcp``, used from synchronous tests.

    A task holds the client open (the SDK's client must be entered and left in one task)
    while the tests' calls run on the same event loop.
    """

    def __init__(self, params: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.params = params
        self.transport_errors: list[Exception] = []
        self.client: Any = None
        self.ready = asyncio.Event()
        self.closing = asyncio.Event()
        self.holder: asyncio.Task[None] | None = None

    async def _record(self, message: Any) -> None:
        if isinstance(message, Exception):  # a line of stdout that is not the protocol
            self.transport_errors.append(message)

    async def _hold(self) -> None:
        from mcp import Client

        async with Client(self.params, cache=None, message_handler=self._record) as client:
            self.client = client
            self.ready.set()
            await self.closing.wait()

    def open(self) -> None:
        self.holder = self.loop.create_task(self._hold())
        ready = self.loop.create_task(self.ready.wait())
        self.loop.run_until_complete(
            asyncio.wait([ready, self.holder], return_when="FIRST_COMPLETED")
        )
        if self.holder.done():  # the server did not start: its error
            self.holder.result()

    def run(self, method: str, *args: Any) -> Any:
        return self.loop.run_until_complete(getattr(self.client, method)(*args))

    def close(self) -> None:
        self.closing.set()
        assert self.holder is not None
        self.loop.run_until_complete(self.holder)
        self.loop.close()


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
