"""The OpenAI-compatible chat API, driven by the real ``openai`` client against a live
server on loopback (bundled encoder and SmolLM2, the three-document index)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from tests.server.helpers import MILL_QUESTION, TOKEN, build_index, live_server, small_config

from mixrag.generator import TransformersGenerator
from mixrag.server import create_app
from mixrag.server.chat.config import ChatConfig

TESLA_QUESTION = "What did Nikola Tesla design?"
CITE_MIN = 0.25  # the web page's rule (server/static/app.js), written out again here


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, encoder: object, smollm2: TransformersGenerator
) -> Iterator[str]:
    index = build_index(tmp_path_factory.mktemp("chat"), encoder)
    chat = ChatConfig(max_messages=6, max_chars=1000)
    app = create_app(
        small_config(index, token=TOKEN, chat=chat), encoder=encoder, generator=smollm2
    )  # type: ignore[arg-type]
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(live: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live}/v1", api_key=TOKEN, max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def http(live: str) -> Iterator[httpx.Client]:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=live, headers=auth, timeout=300) as c:
        yield c


@pytest.fixture(scope="module")
def ask(http: httpx.Client) -> Callable[[str, str], dict[str, Any]]:
    """/v1/ask's answer to (question, mode), asked once per module."""
    answers: dict[tuple[str, str], dict[str, Any]] = {}

    def get(question: str, mode: str) -> dict[str, Any]:
        if (question, mode) not in answers:
            r = http.post("/v1/ask", json={"question": question, "mode": mode})
            assert r.status_code == 200, r.text
            answers[question, mode] = r.json()
        return answers[question, mode]

    return get


def _expected_content(asked: dict[str, Any]) -> str:
    """The answer and the [rank] of the best passage and of any with posterior >= 0.25."""
    ranked = sorted(asked["passages"], key=lambda p: -p["posterior"])
    cited = [p["rank"] for i, p in enumerate(ranked) if i == 0 or p["posterior"] >= CITE_MIN]
    return f"{asked['answer']} " + "".join(f"[{n}]" for n in cited)


def _same_answer(ext: dict[str, Any], asked: dict[str, Any]) -> None:
    assert ext["answer"] == asked["answer"] and ext["mode"] == asked["mode"]
    assert ext["tokens"] == asked["tokens"]
    assert ext["logprob"] == pytest.approx(asked["logprob"], abs=1e-4)
    assert [p["passage"]["id"] for p in ext["passages"]] == [
        p["passage"]["id"] for p in asked["passages"]
    ]
    for mine, theirs in zip(ext["passages"], asked["passages"], strict=True):
        assert mine["rank"] == theirs["rank"]
        assert mine["prior"] == pytest.approx(theirs["prior"], abs=1e-5)
        assert mine["posterior"] == pytest.approx(theirs["posterior"], abs=1e-4)


def test_models_are_the_modes_and_an_alias(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models] == [
        "mixrag",
        "mixrag-rag-sequence",
        "mixrag-rag-token",
        "mixrag-concat",
        "mixrag-closed-book",
    ]
    alias = client.models.retrieve("mixrag")
    assert alias.owned_by == "mixrag" and alias.model_extra == {"mixrag": {"mode": "rag-sequence"}}
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("gpt-4o")
    assert e.value.code == "model_not_found"


def test_a_reply_is_the_asked_answer_with_its_citations(
    client: openai.OpenAI, ask: Callable[[str, str], dict[str, Any]]
) -> None:
    reply = client.chat.completions.create(
        model="mixrag-rag-sequence",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": MILL_QUESTION},
        ],
        temperature=0.7,
    )
    asked = ask(MILL_QUESTION, "rag-sequence")
    assert reply.object == "chat.completion" and reply.model == "mixrag-rag-sequence"
    (choice,) = reply.choices
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert choice.message.content == _expected_content(asked)
    assert "1901" in choice.message.content
    ext = (reply.model_extra or {})["mixrag"]
    _same_answer(ext, asked)
    best = max(asked["passages"], key=lambda p: p["posterior"])
    assert ext["cited"][0] == best["rank"] and best["passage"]["source"].endswith("mill.md")
    assert ext["ignored"] == ["temperature"] and ext["retrieval_query"] == MILL_QUESTION
    assert reply.usage is not None
    assert reply.usage.completion_tokens == len(asked["tokens"]) and reply.usage.prompt_tokens > 0


def test_an_unsupported_answer_is_not_found_and_the_extension_keeps_the_guess(
    client: openai.OpenAI, ask: Callable[[str, str], dict[str, Any]]
) -> None:
    from mixrag.support import NOT_FOUND

    reply = client.chat.completions.create(
        model="mixrag-rag-sequence",
        messages=[{"role": "user", "content": MILL_QUESTION}],
        extra_body={"min_confidence": 1.0},
    )
    assert reply.choices[0].message.content == NOT_FOUND
    ext = (reply.model_extra or {})["mixrag"]
    _same_answer(ext, ask(MILL_QUESTION, "rag-sequence"))
    assert ext["supported"] is False and "1901" in ext["answer"] and ext["gain"] > 1.0


def test_a_streamed_reply_sends_settled_words_then_the_account(
    client: openai.OpenAI, ask: Callable[[str, str], dict[str, Any]]
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="mixrag-concat",
            messages=[{"role": "user", "content": TESLA_QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    asked = ask(TESLA_QUESTION, "concat")
    assert len(asked["answer"].split()) >= 3  # so that words can stream before the end
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(deltas) >= 3
    assert "".join(deltas) == _expected_content(asked)
    finish = chunks[-2]
    assert finish.choices[0].finish_reason == "stop"
    _same_answer((finish.model_extra or {})["mixrag"], asked)
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(asked["tokens"])
    assert len({c.id for c in chunks}) == 1


def test_a_rag_sequence_stream_sends_the_decided_answer_once(
    http: httpx.Client, ask: Callable[[str, str], dict[str, Any]]
) -> None:
    body = {"model": "mixrag", "messages": [{"role": "user", "content": MILL_QUESTION}]}
    with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    texts = [c["choices"][0]["delta"].get("content") for c in chunks]
    asked = ask(MILL_QUESTION, "rag-sequence")
    assert texts == ["", _expected_content(asked), None]  # provisional beams are not sent
    assert chunks[-1]["model"] == "mixrag-rag-sequence"
    _same_answer(chunks[-1]["mixrag"], asked)


def test_a_follow_up_is_searched_with_the_exchange_before_it(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    reply = client.chat.completions.create(
        model="mixrag-closed-book",
        messages=[
            {"role": "user", "content": MILL_QUESTION},
            {"role": "assistant", "content": "1901 [1]"},
            {"role": "user", "content": "Who founded it?"},
        ],
        max_tokens=3,
        extra_body={"k": 2, "method": "hybrid"},
    )
    ext = (reply.model_extra or {})["mixrag"]
    assert ext["question"] == "Who founded it?"
    assert ext["retrieval_query"] == f"{MILL_QUESTION} 1901 Who founded it?"
    assert (ext["k"], ext["method"]) == (2, "hybrid")
    search = http.get(
        "/v1/search", params={"q": ext["retrieval_query"], "k": 2, "method": "hybrid"}
    )
    hits = search.json()["hits"]
    assert [p["passage"]["id"] for p in ext["passages"]] == [h["passage"]["id"] for h in hits]
    assert hits[0]["passage"]["source"].endswith("mill.md")
    assert len(ext["tokens"]) <= 3  # max_tokens, under the server's 12
    assert reply.choices[0].finish_reason == ("length" if len(ext["tokens"]) == 3 else "stop")


def test_the_token_is_needed(live: str) -> None:
    wrong = openai.OpenAI(base_url=f"{live}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        wrong.chat.completions.create(
            model="mixrag", messages=[{"role": "user", "content": MILL_QUESTION}]
        )
    assert e.value.code == "invalid_api_key" and e.value.type == "invalid_request_error"
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    for path in ("/v1/models", "/v1/models/mixrag"):
        r = httpx.get(f"{live}{path}")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.post(f"{live}/v1/chat/completions", json={"model": "gpt-4", "n": 5})
    assert r.status_code == 401  # a stranger learns nothing about the request


def _user(text: str = MILL_QUESTION) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize(
    ("body", "status", "param", "words"),
    [
        ({"model": "gpt-4", "messages": _user()}, 404, "model", ["gpt-4", "mixrag-rag-token"]),
        ({"messages": _user()}, 400, "model", ["required"]),
        ({"model": "mixrag", "messages": []}, 400, "messages", ["at least one"]),
        ({"model": "mixrag", "messages": _user("x" * 201)}, 400, "messages", ["201", "200"]),
        ({"model": "mixrag", "messages": _user("  ")}, 400, "messages", ["empty"]),
        ({"model": "mixrag", "messages": _user() * 7}, 400, "messages", ["7 messages", "6"]),
        ({"model": "mixrag", "messages": _user("x" * 250) * 5}, 400, "messages", ["1250", "1000"]),
        (
            {"model": "mixrag", "messages": [*_user(), {"role": "assistant", "content": "1901"}]},
            400,
            "messages.[1].role",
            ["last", "assistant"],
        ),
        (
            {"model": "mixrag", "messages": [{"role": "robot", "content": "hi"}]},
            400,
            "messages.[0].role",
            ["robot"],
        ),
        ({"model": "mixrag", "messages": _user(), "n": 2}, 400, "n", ["1 choice", "2"]),
        ({"model": "mixrag", "messages": _user(), "k": 9}, 400, "k", ["1..5", "9"]),
        ({"model": "mixrag", "messages": _user(), "method": "grep"}, 400, "method", ["grep"]),
        ({"model": "mixrag", "messages": _user(), "beams": 9}, 400, "beams", ["1..4"]),
        ({"model": "mixrag", "messages": _user(), "max_tokens": 0}, 400, "max_tokens", [">= 1"]),
        (
            {"model": "mixrag", "messages": _user(), "temprature": 0},
            400,
            "temprature",
            ["temprature"],
        ),
        (
            {"model": "mixrag", "messages": _user(), "response_format": {"type": "json_object"}},
            400,
            "response_format",
            ["json_object"],
        ),
        (
            {"model": "mixrag", "messages": _user(), "tool_choice": "required"},
            400,
            "tool_choice",
            ["tools"],
        ),
    ],
)
def test_bad_requests_are_openai_errors_naming_the_problem(
    http: httpx.Client, body: dict[str, Any], status: int, param: str, words: list[str]
) -> None:
    for stream in (False, True):  # refused before a stream starts, as JSON
        r = http.post("/v1/chat/completions", json={**body, "stream": stream})
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/json")
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error" and error["param"] == param
        for w in words:
            assert w in error["message"], (w, error)


def test_malformed_json_and_the_clients_own_exceptions(
    http: httpx.Client, client: openai.OpenAI
) -> None:
    r = http.post(
        "/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="mixrag", messages=_user(), n=3)
    assert e.value.param == "n"
    with pytest.raises(openai.NotFoundError) as e2:
        client.chat.completions.create(model="gpt-4o-mini", messages=_user())
    assert e2.value.code == "model_not_found" and e2.value.param == "model"
