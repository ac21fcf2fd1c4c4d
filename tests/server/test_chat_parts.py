"""The chat API's parts without a model: conversations, citations, chunks, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from mixrag.answer import Answer, Citation
from mixrag.errors import MixragError
from mixrag.server.chat.config import ChatConfig
from mixrag.server.chat.conversation import read_turn, refers_back
from mixrag.server.chat.errors import ChatError, chat_error, stream_error
from mixrag.server.chat.models import mode_of, model_card, model_names
from mixrag.server.chat.replies import Reply, completion, content, markers
from mixrag.server.chat.schemas import ChatMessage, ChatRequest
from mixrag.server.chat.stream import FinalText, chat_events
from mixrag.server.concurrency import BusyError
from mixrag.server.errors import ApiError
from mixrag.server.params import AskParams
from mixrag.types import Hit, Passage

Q1 = "In which year was the Riverside Mill founded?"


def _messages(*turns: tuple[str, Any]) -> list[ChatMessage]:
    return [ChatMessage(role=role, content=text) for role, text in turns]  # type: ignore[arg-type]


def _answer(text: str, posteriors: list[float | None], n_tokens: int = 3) -> Answer:
    k = len(posteriors)
    cites = tuple(
        Citation(
            hit=Hit(Passage(f"p{j}", f"d{j}", f"T{j}", f"text {j}"), 0.5, 1 / k, j + 1, 0.5),
            prior=1 / k,
            posterior=post,
            logprob=-1.0,
        )
        for j, post in enumerate(posteriors)
    )
    return Answer(Q1, "rag-sequence", text, -0.5, tuple(range(n_tokens)), cites)


def _params(max_new_tokens: int = 12) -> AskParams:
    return AskParams(Q1, "rag-sequence", 3, "dense", 1, "thorough", max_new_tokens)


def _reply(**fields: Any) -> Reply:
    turn = read_turn(_messages(("user", Q1)), ChatConfig(), 200)
    return Reply.new("mixrag-rag-sequence", turn, _params(), **fields)


# -- conversations -------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "follow_up"),
    [
        ("Who founded it?", True),
        ("When did they close the mill?", True),
        ("And in 1975?", True),
        ("what about the fire", True),
        ("Why?", True),
        ("What did Nikola Tesla design?", False),
        ("Where is the Amazon rainforest?", False),
    ],
)
def test_a_question_refers_back_by_pronoun_lead_or_shortness(
    question: str, follow_up: bool
) -> None:
    assert refers_back(question) is follow_up


def test_a_follow_up_is_searched_with_the_previous_exchange_and_asked_alone() -> None:
    turn = read_turn(
        _messages(
            ("system", "You are a helpful assistant."),
            ("user", "What did Nikola Tesla design?"),
            ("assistant", "the Tesla coil [1]"),
            ("user", Q1),
            ("assistant", "1901 [2][3]"),
            ("tool", "ignored"),
            ("user", "Who founded it?"),
        ),
        ChatConfig(),
        200,
    )
    assert turn.question == "Who founded it?"
    assert turn.retrieval_query == f"{Q1} 1901 Who founded it?"


def test_a_new_subject_and_a_first_question_are_searched_as_they_are() -> None:
    history = (("user", Q1), ("assistant", "1901 [1]"))
    new = read_turn(
        _messages(*history, ("user", "What did Nikola Tesla design?")), ChatConfig(), 200
    )
    assert new.retrieval_query == new.question == "What did Nikola Tesla design?"
    first = read_turn(_messages(("user", "Who founded it?")), ChatConfig(), 200)
    assert first.retrieval_query == "Who founded it?"


def test_the_retrieval_query_keeps_the_last_words_that_fit() -> None:
    long = " ".join(f"word{i}" for i in range(60))
    turn = read_turn(_messages(("user", long), ("user", "Who was it?")), ChatConfig(), 60)
    assert len(turn.retrieval_query) <= 60
    assert turn.retrieval_query.endswith("word59 Who was it?")
    assert turn.retrieval_query.split()[0].startswith("word")  # whole words only


def test_text_parts_are_read_and_other_parts_refused() -> None:
    parts = [{"type": "text", "text": "In which year"}, {"type": "text", "text": "was it founded?"}]
    turn = read_turn(_messages(("user", parts)), ChatConfig(), 200)
    assert turn.question == "In which year\nwas it founded?"
    image = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {}}]
    with pytest.raises(ChatError, match="image_url") as e:
        read_turn(_messages(("user", image)), ChatConfig(), 200)
    assert e.value.param == "messages.[0].content"


@pytest.mark.parametrize(
    ("turns", "config", "words", "param"),
    [
        ((), ChatConfig(), ["at least one"], "messages"),
        (
            (("user", Q1), ("assistant", "1901")),
            ChatConfig(),
            ["last", "'assistant'"],
            "messages.[1].role",
        ),
        (
            (("user", "a"),) * 4,
            ChatConfig(max_messages=3),
            ["4 messages", "limit is 3"],
            "messages",
        ),
        (
            (("user", "x" * 30), ("user", "y" * 30)),
            ChatConfig(max_chars=50),
            ["60", "50"],
            "messages",
        ),
    ],
)
def test_conversations_that_cannot_be_read_are_named(
    turns: tuple[tuple[str, str], ...], config: ChatConfig, words: list[str], param: str
) -> None:
    with pytest.raises(ChatError) as e:
        read_turn(_messages(*turns), config, 200)
    assert e.value.status == 400 and e.value.param == param
    for w in words:
        assert w in e.value.message


def test_chat_config_refuses_nonpositive_limits() -> None:
    with pytest.raises(MixragError, match="max_messages"):
        ChatConfig(max_messages=0)
    with pytest.raises(MixragError, match="max_chars"):
        ChatConfig(max_chars=-1)


# -- models, requests ------------------------------------------------------------


def test_model_names_map_to_modes_and_the_alias_to_the_default() -> None:
    assert model_names() == (
        "mixrag",
        "mixrag-rag-sequence",
        "mixrag-rag-token",
        "mixrag-concat",
        "mixrag-closed-book",
    )
    assert mode_of("mixrag", "concat") == "concat"
    assert mode_of("mixrag-rag-token", "concat") == "rag-token"
    assert model_card("mixrag", "rag-token", 7)["mixrag"] == {"mode": "rag-token"}
    with pytest.raises(ChatError) as e:
        mode_of("gpt-4o", "concat")
    assert (e.value.status, e.value.code, e.value.param) == (404, "model_not_found", "model")
    assert "'gpt-4o'" in e.value.message and "mixrag-rag-token" in e.value.message


def test_requests_list_what_they_ignore_and_refuse_unknown_arguments() -> None:
    body = {"model": "mixrag", "messages": [{"role": "user", "content": Q1}]}
    req = ChatRequest.model_validate({**body, "temperature": 0.7, "seed": 1, "top_p": None})
    assert req.ignored() == ["temperature", "seed"]
    with pytest.raises(ValidationError, match="temprature"):
        ChatRequest.model_validate({**body, "temprature": 0.7})


# -- citations and replies ---------------------------------------------------------


@pytest.mark.parametrize(
    ("posteriors", "cited"),
    [
        ([0.1, 0.7, 0.2], [2]),
        ([0.3, 0.1, 0.6], [3, 1]),
        ([0.25, 0.5, 0.25], [2, 1, 3]),  # ties keep retrieval order
        ([0.1, 0.1, 0.1, 0.7], [4]),
        ([None, None], []),
    ],
)
def test_cited_passages_are_the_best_and_any_over_a_quarter(
    posteriors: list[float | None], cited: list[int]
) -> None:
    answer = _answer("1901", posteriors)
    assert [c.hit.rank for c in answer.cited()] == cited
    assert markers(answer) == "".join(f"[{n}]" for n in cited)


def test_content_is_the_answer_then_its_markers() -> None:
    assert content(_answer("1901", [0.3, 0.1, 0.6])) == "1901 [3][1]"
    assert content(_answer("", [0.9, 0.1])) == "[1]"
    assert content(_answer("1901", [None])) == "1901"


def test_a_completion_is_openais_shape_with_the_answer_beside_it() -> None:
    answer = _answer("1901", [0.1, 0.9, 0.0], n_tokens=12)
    out = completion(answer, _reply(ignored=("temperature",), prompt_tokens=9))
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    assert out["model"] == "mixrag-rag-sequence"
    (choice,) = out["choices"]
    assert choice["message"] == {"role": "assistant", "content": "1901 [2]", "refusal": None}
    assert choice["finish_reason"] == "length"  # 12 tokens of the 12 allowed
    assert out["usage"] == {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}
    ext = out["mixrag"]
    assert {k: v for k, v in ext.items() if k in answer.to_dict()} == answer.to_dict()
    assert ext["cited"] == [2] and ext["ignored"] == ["temperature"]
    assert ext["retrieval_query"] == Q1 and (ext["k"], ext["method"]) == (3, "dense")
    json.dumps(out, allow_nan=False)


# -- streaming ---------------------------------------------------------------------


def test_final_text_sends_a_word_once_the_next_has_begun() -> None:
    t = FinalText()
    steps = ["It", "It was", "It was found", "It was founded"]
    assert [t.advance(s) for s in steps] == ["", "It", " was", ""]
    assert t.finish("It was founded in 1901") == " founded in 1901"
    # the tokenizer's clean-up joins " 's" to its word: nothing sent had to change
    t = FinalText()
    sent = [t.advance(s) for s in ["Tesla", "Tesla '", "Tesla's", "Tesla's coil"]]
    assert sent == ["", "Tesla", "", "'s"]
    assert t.finish("Tesla's coil") == " coil"
    # clean_answer drops a final period, which comes back once the answer goes on
    t = FinalText()
    assert [t.advance(s) for s in ["Dr", "Dr. Smith", "Dr. Smith founded"]] == ["", "Dr.", " Smith"]


class _FakeStream:
    """What chat_events reads of an AnswerStream: the events, then the answer."""

    def __init__(self, provisional: bool, items: list[Any], answer: Answer) -> None:
        self.provisional = provisional
        self._items = items
        self.answer = answer
        self.closed = False

    async def items(self) -> AsyncIterator[Any]:
        for item in self._items:
            yield item

    def close(self) -> None:
        self.closed = True


def _run(stream: _FakeStream, reply: Reply) -> list[Any]:
    async def collect() -> list[str]:
        return [line async for line in chat_events(stream, reply)]  # type: ignore[arg-type]

    out: list[Any] = []
    for line in asyncio.run(collect()):
        if line.startswith(":") or line == "data: [DONE]\n\n":
            out.append(line)
        else:
            out.append(json.loads(line.removeprefix("data: ")))
    assert stream.closed
    return out


def _token(text: str, provisional: bool = False) -> tuple[str, dict[str, Any]]:
    return ("token", {"text": text, "delta": None, "provisional": provisional})


def test_a_final_prefix_streams_word_by_word_and_ends_with_the_account() -> None:
    answer = _answer("founded in 1901", [0.2, 0.8])
    items = [
        _token("founded"),
        None,
        _token("founded in"),
        _token("founded in 1901."),
        ("answer", {}),
    ]
    chunks = _run(_FakeStream(False, items, answer), _reply(include_usage=True))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1] == ": waiting\n\n"  # a comment keeps the connection while nothing comes
    deltas = [
        c["choices"][0]["delta"].get("content")
        for c in chunks
        if isinstance(c, dict) and c["choices"]
    ]
    assert deltas == ["", "founded", " in", " 1901 [2]", None]
    finish = chunks[-3]
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["mixrag"]["cited"] == [2]
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["completion_tokens"] == 3
    assert chunks[-1] == "data: [DONE]\n\n"
    assert len({c["id"] for c in chunks if isinstance(c, dict)}) == 1


def test_a_provisional_leader_is_never_streamed() -> None:
    answer = _answer("1901", [0.9, 0.1])
    items = [_token("1875", True), _token("1875 and", True), ("answer", {})]
    chunks = _run(_FakeStream(True, items, answer), _reply())
    texts = [c["choices"][0]["delta"].get("content") for c in chunks[:-1]]
    assert texts == ["", "1901 [1]", None]  # no usage chunk unless asked
    assert "1875" not in json.dumps(chunks)


def test_an_error_mid_stream_is_openais_error_line() -> None:
    items = [("error", {"error": "busy", "detail": "the server is shutting down"})]
    chunks = _run(_FakeStream(True, items, _answer("", [1.0])), _reply())
    assert chunks[-1] == {
        "error": {
            "message": "the server is shutting down",
            "type": "server_error",
            "param": None,
            "code": "busy",
        }
    }
    assert stream_error({"error": "bad_request", "detail": "x"})["error"]["type"] == (
        "invalid_request_error"
    )


# -- errors ------------------------------------------------------------------------


def test_errors_take_openais_shape_with_the_field_to_blame() -> None:
    err = chat_error(ApiError(422, "invalid_request", "k: must be in 1..5, got 9"))
    assert err is not None and err.body() == {
        "error": {
            "message": "k: must be in 1..5, got 9",
            "type": "invalid_request_error",
            "param": "k",
            "code": "invalid_request",
        }
    }
    err = chat_error(ApiError(422, "invalid_request", "question: must not be empty"))
    assert err is not None and err.status == 400 and err.param == "messages"
    assert err.message == "the last user message: must not be empty"
    auth = chat_error(ApiError(401, "unauthorized", "send a token"))
    assert auth is not None and auth.code == "invalid_api_key"
    assert auth.response().headers["www-authenticate"] == "Bearer"
    busy = chat_error(BusyError("8 answers are running or queued"))
    assert busy is not None and busy.status == 503 and busy.type == "server_error"
    assert busy.response().headers["retry-after"] == "2"
    empty = chat_error(ApiError(409, "no_passages", "the index holds no passages"))
    assert empty is not None and empty.response().headers["x-should-retry"] == "false"
    bad = chat_error(
        RequestValidationError(
            [{"type": "literal_error", "loc": ("body", "messages", 0, "role"), "msg": "bad"}]
        )
    )
    assert bad is not None and (bad.status, bad.param) == (400, "messages.[0].role")
    assert chat_error(RuntimeError("a bug")) is None


def test_a_client_that_leaves_at_once_stops_the_answer() -> None:
    stream = _FakeStream(False, [_token("founded in")], _answer("founded in 1901", [1.0]))

    async def leave_after_the_first_chunk() -> None:
        events = chat_events(stream, _reply())  # type: ignore[arg-type]
        await events.__anext__()
        await events.aclose()

    asyncio.run(leave_after_the_first_chunk())
    assert stream.closed
