"""One question, three clients, one answer: the `openai` client (chat API), an MCP client
(the official SDK over /mcp) and the web page in headless Chromium, against one live
server over one index, answer with the same text, the same passages and the same
citations (issue 24's done-when)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from tests.server.helpers import (
    MILL_QUESTION,
    TOKEN,
    build_index,
    chromium,
    live_server,
    require_browser,
    small_config,
)

from mixrag.generator import TransformersGenerator
from mixrag.server import create_app

K = 3


@pytest.fixture(scope="module")
def live_url(
    tmp_path_factory: pytest.TempPathFactory, encoder: object, smollm2: TransformersGenerator
) -> Iterator[str]:
    require_browser()
    index = build_index(tmp_path_factory.mktemp("everywhere"), encoder)
    config = small_config(index, token=TOKEN)
    app = create_app(config, encoder=encoder, generator=smollm2)  # type: ignore[arg-type]
    with live_server(app) as url:
        yield url


def _openai(url: str) -> dict[str, Any]:
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0, timeout=300)
    reply = client.chat.completions.create(
        model="mixrag-rag-sequence",
        messages=[{"role": "user", "content": MILL_QUESTION}],
        extra_body={"k": K},
    )
    ext = (reply.model_extra or {})["mixrag"]
    return {
        "content": reply.choices[0].message.content,
        "answer": ext["answer"],
        "ids": [p["passage"]["id"] for p in ext["passages"]],
        "posteriors": [p["posterior"] for p in ext["passages"]],
        "cited": ext["cited"],
    }


def _mcp(url: str) -> dict[str, Any]:
    import httpx2  # the SDK's HTTP client
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def main() -> Any:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx2.AsyncClient(headers=headers, timeout=300) as http:
            transport = streamable_http_client(f"{url}/mcp", http_client=http)
            async with Client(transport, cache=None) as client:
                args = {"question": MILL_QUESTION, "mode": "rag-sequence", "k": K}
                return await client.call_tool("ask", args)

    result = asyncio.run(main())
    assert not result.is_error
    body = result.structured_content
    text = result.content[0].text
    return {
        "content": text.splitlines()[0],
        "answer": body["answer"],
        "ids": [p["passage"]["id"] for p in body["passages"]],
        "posteriors": [p["posterior"] for p in body["passages"]],
    }


def _page(url: str) -> dict[str, Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    with chromium() as browser:
        wait = WebDriverWait(browser, 300)
        browser.get(url + "/")
        wait.until(lambda d: d.find_element(By.ID, "token").is_displayed())  # asked for it
        token = browser.find_element(By.ID, "token")
        token.send_keys(TOKEN)
        browser.find_element(By.ID, "token-save").click()
        wait.until(lambda d: len(Select(d.find_element(By.ID, "k")).options) == 5)
        Select(browser.find_element(By.ID, "k")).select_by_value(str(K))
        Select(browser.find_element(By.ID, "mode")).select_by_value("rag-sequence")
        browser.find_element(By.ID, "question").send_keys(MILL_QUESTION)
        browser.find_element(By.ID, "ask-button").click()
        wait.until(
            lambda d: d.find_element(By.ID, "answer-text").get_attribute("data-state") == "final"
        )
        answer = browser.execute_script(
            "return document.getElementById('answer-text').firstChild.textContent"
        )
        cited = [
            int(a.text.strip("[]"))
            for a in browser.find_elements(By.CSS_SELECTOR, "#answer-text a.cite")
        ]
        cards = browser.find_elements(By.CSS_SELECTOR, ".passage-card")
        return {
            "answer": answer,
            "ranks": [int(c.get_attribute("id").removeprefix("passage-")) for c in cards],
            "posteriors": [
                float(c.find_element(By.CSS_SELECTOR, ".posterior-value").text) for c in cards
            ],
            "cited": cited,
        }


@pytest.mark.slow
def test_openai_mcp_and_the_browser_give_the_same_answer_and_citations(live_url: str) -> None:
    chat, mcp, page = _openai(live_url), _mcp(live_url), _page(live_url)
    assert "1901" in chat["answer"]
    assert chat["answer"] == mcp["answer"] == page["answer"]
    # the same passages, in retrieval order, with the same posteriors
    assert chat["ids"] == mcp["ids"] and len(chat["ids"]) == K
    assert page["ranks"] == list(range(1, K + 1))
    assert chat["posteriors"] == pytest.approx(mcp["posteriors"], abs=1e-6)
    assert page["posteriors"] == pytest.approx(chat["posteriors"], abs=5e-3)  # shown rounded
    # the same citations, marked the same way: "answer [n][m]"
    assert chat["cited"] == page["cited"] and chat["cited"]
    assert chat["content"] == mcp["content"]
    assert chat["content"] == chat["answer"] + " " + "".join(f"[{n}]" for n in chat["cited"])
