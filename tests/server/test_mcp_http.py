"""The MCP tools at /mcp of a live server on 127.0.0.1, driven by the official MCP client SDK.

The server has a token, so every call also checks that /mcp sits behind it; the tools'
results are compared with the /v1 endpoints' bodies over the same index.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from tests.server.helpers import MILL_QUESTION, TOKEN, build_index, live_server, small_config

from mixrag.generator import TransformersGenerator
from mixrag.server import create_app
from mixrag.server.mcp import McpConfig
from mixrag.server.mcp.config import READ_TOOLS, WRITE_TOOLS

T = TypeVar("T")
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, encoder: object, smollm2: TransformersGenerator
) -> Iterator[tuple[str, Any]]:
    """(base URL, the app) of a served tiny index with a token."""
    index = build_index(tmp_path_factory.mktemp("mcp-http"), encoder)
    config = small_config(index, token=TOKEN)
    app = create_app(config, encoder=encoder, generator=smollm2)  # type: ignore[arg-type]
    with live_server(app) as url:
        yield url, app


def with_client(url: str, use: Callable[[Any], Awaitable[T]], headers: dict[str, str]) -> T:
    """Run ``use(client)`` with an MCP client connected to ``url``/mcp."""
    import httpx2  # the SDK's HTTP client
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def main() -> T:
        async with httpx2.AsyncClient(headers=headers, timeout=300) as http:
            transport = streamable_http_client(f"{url}/mcp", http_client=http)
            async with Client(transport, cache=None) as client:
                return await use(client)

    return asyncio.run(main())


def call(url: str, tool: str, arguments: dict[str, Any]) -> Any:
    async def use(client: Any) -> Any:
        return await client.call_tool(tool, arguments)

    return with_client(url, use, AUTH)


def without_timings(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "timings"}


def test_the_tools_are_listed_with_descriptions_and_schemas(live: tuple[str, Any]) -> None:
    url, _ = live

    async def use(client: Any) -> Any:
        return (await client.list_tools()).tools

    tools = {t.name: t for t in with_client(url, use, AUTH)}
    assert set(tools) == set(READ_TOOLS + WRITE_TOOLS)
    for tool in tools.values():
        assert len(tool.description) > 100, tool.name
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
    assert tools["ask"].annotations.read_only_hint is True
    assert tools["remove_document"].annotations.destructive_hint is True
    # the limits quoted are this server's (small_config: max_k 5, 200 characters)
    ask = tools["ask"].input_schema["properties"]
    assert "1 to 5" in ask["k"]["description"] and "200" in ask["question"]["description"]
    assert ask["mode"]["anyOf"][0]["enum"] == ["rag-sequence", "rag-token", "concat", "closed-book"]


def test_read_only_offers_no_write_tools(live: tuple[str, Any]) -> None:
    from mcp import Client

    from mixrag.server.mcp.tools import build_server

    _, app = live
    server = build_server(app.state.service, McpConfig(read_only=True))

    async def names() -> set[str]:
        async with Client(server, cache=None) as client:
            return {t.name for t in (await client.list_tools()).tools}

    assert asyncio.run(names()) == set(READ_TOOLS)


def test_search_gives_the_v1_hits(live: tuple[str, Any]) -> None:
    url, _ = live
    result = call(url, "search", {"question": MILL_QUESTION, "k": 2})
    assert not result.is_error
    v1 = httpx.get(f"{url}/v1/search", params={"q": MILL_QUESTION, "k": 2}, headers=AUTH).json()
    assert result.structured_content == v1
    hits = result.structured_content["hits"]
    assert hits[0]["passage"]["source"].endswith("mill.md")
    assert sum(h["prior"] for h in hits) == pytest.approx(1.0, abs=1e-5)
    assert "[1] prior" in result.content[0].text and "Riverside Mill" in result.content[0].text


def test_ask_gives_the_v1_answer_and_citations_and_score_agrees(live: tuple[str, Any]) -> None:
    url, _ = live
    args = {"question": MILL_QUESTION, "mode": "rag-sequence", "k": 3}
    result = call(url, "ask", {**args, "alternatives": 2})
    assert not result.is_error
    got = result.structured_content
    v1 = httpx.post(
        f"{url}/v1/ask", json={**args, "alternatives": 2}, headers=AUTH, timeout=120
    ).json()
    assert without_timings(got) == without_timings(v1)
    assert "1901" in got["answer"]
    best = max(got["passages"], key=lambda p: p["posterior"])
    assert best["passage"]["source"].endswith("mill.md")
    text = result.content[0].text
    assert text.startswith(f"{got['answer']} [{best['rank']}]") and "log p(y|x)" in text
    # the other answers, as /v1/ask gives them: ranked below the answer, best first
    others = [a["logprob"] for a in got["alternatives"]]
    assert len(others) <= 2 and others == sorted(others, reverse=True)
    assert all(lp <= got["logprob"] for lp in others)
    assert ("Other answers, by p(y|x):" in text) == bool(others)

    # score: the log p(y|x) of the answer ask gave, over the same passages
    scored = call(url, "score", {**args, "answer": got["answer"]}).structured_content
    assert scored["answer"] == got["answer"] and math.isfinite(scored["logprob"])
    assert scored["logprob"] == pytest.approx(got["logprob"], abs=1e-3)
    post = [p["posterior"] for p in scored["passages"]]
    assert post == pytest.approx([p["posterior"] for p in got["passages"]], abs=1e-3)
    worse = call(url, "score", {**args, "answer": "1750"}).structured_content
    assert worse["logprob"] < scored["logprob"]


def test_a_document_added_is_found_then_removed(live: tuple[str, Any]) -> None:
    url, _ = live
    fact = "The Zorblax festival is held every March in the town of Quillton."
    added = call(url, "add_document", {"title": "Zorblax festival", "text": fact})
    assert not added.is_error and added.structured_content["status"] == "added"
    doc_id = added.structured_content["document"]["id"]
    listed = call(url, "list_documents", {}).structured_content["documents"]
    assert doc_id in {d["id"] for d in listed}
    hits = call(url, "search", {"question": "Where is the Zorblax festival held?", "k": 1})
    assert hits.structured_content["hits"][0]["passage"]["text"].endswith("Quillton.")

    removed = call(url, "remove_document", {"id": doc_id})
    assert not removed.is_error and removed.structured_content["id"] == doc_id
    listed = call(url, "list_documents", {}).structured_content["documents"]
    assert doc_id not in {d["id"] for d in listed}
    again = call(url, "remove_document", {"id": doc_id})
    assert again.is_error and "unknown_document" in again.content[0].text


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("ask", {"question": "x" * 201}, "question: 201 characters; the limit is 200"),
        ("ask", {"question": "   "}, "question: must not be empty"),
        ("search", {"question": MILL_QUESTION, "k": 9}, "k: must be in 1..5, got 9"),
        ("ask", {"question": MILL_QUESTION, "mode": "magic"}, "mode"),
        ("ask", {"question": MILL_QUESTION, "alternatives": 11}, "alternatives"),
        ("score", {"question": MILL_QUESTION, "answer": ""}, "answer: must not be empty"),
        ("add_document", {"text": "hello"}, "give either 'title' or 'name'"),
        ("add_document", {"name": "../x.md", "text": "hello"}, "bad_file_name"),
        ("remove_document", {"id": "nope"}, "ids are 16 hex digits"),
    ],
)
def test_mistakes_are_tool_errors_and_the_server_goes_on(
    live: tuple[str, Any], tool: str, arguments: dict[str, Any], message: str
) -> None:
    url, _ = live
    result = call(url, tool, arguments)
    assert result.is_error
    assert message in result.content[0].text
    assert not call(url, "list_documents", {}).is_error


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
)
def test_mcp_needs_the_token(live: tuple[str, Any], headers: dict[str, str]) -> None:
    url, _ = live
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    r = httpx.post(f"{url}/mcp", json=body, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


def test_the_sdk_client_without_the_token_is_refused(live: tuple[str, Any]) -> None:
    url, _ = live

    async def use(client: Any) -> Any:
        return await client.list_tools()

    from mcp import MCPError

    with pytest.raises(BaseException) as refused:
        with_client(url, use, {})
    # the SDK turns the 401 into an error answer to its first request
    assert any(isinstance(e, MCPError) for e in leaves(refused.value)), refused.value


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in leaves(e)]
    return [exc]
