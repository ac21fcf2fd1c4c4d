"""The chat router: ``POST /v1/chat/completions``, ``GET /v1/models[/{model}]``.

Routes only parse, call :class:`~mixrag.server.service.Service` as ``/v1/ask`` does
(the same limits, queue and decoding), and format. Mounted by
:func:`~mixrag.server.app.create_app` behind the same token as every ``/v1`` endpoint.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from mixrag.server.chat.conversation import read_turn
from mixrag.server.chat.errors import ChatError, OpenAIRoute
from mixrag.server.chat.models import mode_of, model_card, model_name, model_names
from mixrag.server.chat.replies import Reply, completion
from mixrag.server.chat.schemas import (
    ChatCompletionOut,
    ChatRequest,
    ModelOut,
    ModelsOut,
    OpenAIErrorOut,
)
from mixrag.server.chat.stream import chat_events
from mixrag.server.concurrency import BusyError
from mixrag.server.params import resolve
from mixrag.server.service import Service
from mixrag.server.streaming import AnswerStream

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIErrorOut} for code in (400, 401, 404, 409, 413, 503)
}


def _refuse_unsupported(body: ChatRequest) -> None:
    """ChatError 400 for OpenAI parameters whose request cannot be met (not merely ignored)."""
    if body.n not in (None, 1):
        raise ChatError(400, "invalid_request", f"n: only 1 choice is given, got {body.n}", "n")
    kind = (body.response_format or {}).get("type", "text")
    if kind != "text":
        raise ChatError(
            400,
            "invalid_request",
            f"response_format: answers are plain text, not {kind!r}",
            "response_format",
        )
    if body.tool_choice not in (None, "none", "auto"):
        raise ChatError(400, "invalid_request", "tool_choice: mixrag calls no tools", "tool_choice")


def _answer_limit(body: ChatRequest, server_limit: int) -> int | None:
    """max_completion_tokens (or max_tokens), capped at the server's limit: an answer is
    never longer than either."""
    name = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
    limit = getattr(body, name)
    if limit is None:
        return None
    if limit < 1:
        raise ChatError(400, "invalid_request", f"{name}: must be >= 1, got {limit}", name)
    return int(min(limit, server_limit))


def _question_tokens(service: Service, question: str) -> int:
    """Tokens of ``question`` alone (a plain prompt is the generator's BOS, if any, + text)."""
    encode = service.generator.encode_prompt
    return len(encode(question)) - len(encode(""))


def plan_reply(service: Service, body: ChatRequest) -> Reply:
    """What a chat request asks, resolved and checked as ``/v1/ask`` checks an ask."""
    cfg = service.config
    mode = mode_of(body.model, cfg.mode)
    _refuse_unsupported(body)
    turn = read_turn(body.messages, cfg.chat, cfg.max_question_chars)
    params = resolve(
        cfg,
        turn.question,
        mode=mode,
        k=body.k,
        method=body.method,
        beams=body.beams,
        decoding=body.decoding,
        max_new_tokens=_answer_limit(body, cfg.max_new_tokens),
        min_confidence=body.min_confidence,
        min_relevance=body.min_relevance,
    )
    options = body.stream_options
    return Reply.new(
        model_name(mode),
        turn,
        params,
        ignored=tuple(body.ignored()),
        include_usage=bool(body.stream and options is not None and options.include_usage),
        prompt_tokens=_question_tokens(service, turn.question),
    )


def chat_router(service: Service) -> APIRouter:
    """The OpenAI-compatible endpoints over one service; errors in OpenAI's shape."""
    router = APIRouter(
        prefix="/v1", route_class=OpenAIRoute, responses=_ERRORS, tags=["OpenAI-compatible"]
    )
    created = int(service.started)

    @router.get("/models", response_model=ModelsOut, summary="The models: one per mode")
    def models() -> Any:
        cards = [model_card(name, service.config.mode, created) for name in model_names()]
        return {"object": "list", "data": cards}

    @router.get("/models/{model}", response_model=ModelOut, summary="One model")
    def model(model: str) -> Any:
        return model_card(model, service.config.mode, created)

    @router.post(
        "/chat/completions",
        response_model=ChatCompletionOut,
        responses={200: {"content": {"text/event-stream": {}}}},
        summary="Answer the last user message (OpenAI chat completions; SSE when streaming)",
    )
    async def chat_completions(body: ChatRequest) -> Any:
        """OpenAI's ``chat.completion`` (or its chunks with ``stream: true``): the answer
        with ``[n]`` markers, and in ``mixrag`` what ``/v1/ask`` returns (README,
        "OpenAI-compatible chat")."""
        reply = plan_reply(service, body)
        if service.batcher.full:  # refuse before retrieving
            raise BusyError(f"{service.batcher.pending} answers are running or queued; retry soon")
        search = dataclasses.replace(reply.params, question=reply.turn.retrieval_query)
        hits = await run_in_threadpool(service.retrieve, search)
        if not body.stream:
            answer = await asyncio.wrap_future(service.submit_answer(reply.params, hits))
            return completion(answer, reply)
        stream = AnswerStream(service, reply.params, hits)  # queued now: a full queue is a 503
        return StreamingResponse(
            chat_events(stream, reply),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
