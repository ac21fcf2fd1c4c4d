"""Errors of the chat API in OpenAI's shape, so OpenAI clients raise their own exceptions.

The body is ``{"error": {"message", "type", "param", "code"}}``: ``type`` is
``invalid_request_error`` for a 4xx and ``server_error`` for a 5xx, ``code`` is the
code ``/v1/ask`` would give (``invalid_request``, ``no_passages``, ``busy``...) or
OpenAI's own where a client looks for it (``model_not_found``, ``invalid_api_key``),
and ``param`` names the bad field where one is to blame. Statuses are ``/v1/ask``'s,
except that a bad field is a 400 (OpenAI's) instead of a 422. :class:`OpenAIRoute`
applies this to every route of the chat router, the token check included.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from mixrag.errors import MixragError
from mixrag.server.concurrency import BusyError
from mixrag.server.errors import ApiError, _describe, api_error

log = logging.getLogger(__name__)

# "k: must be in 1..5, got 9" names its field; the question is the last user message
_FIELD = re.compile(r"^([a-z_]+): ")
_PARAMS = {"question": "messages"}
_SERVER_CODES = frozenset({"internal_error", "busy", "model_unavailable"})


class ChatError(Exception):
    """A chat request refused: HTTP status, a short code, a message, the field to blame."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param

    @property
    def type(self) -> str:
        return "server_error" if self.status >= 500 else "invalid_request_error"

    def body(self) -> dict[str, Any]:
        """OpenAI's error object."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        headers = {}
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if self.status == 503:
            headers["Retry-After"] = "2"
        if self.status == 409:  # an empty index stays empty: OpenAI clients retry a 409
            headers["x-should-retry"] = "false"
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def _from_api(err: ApiError) -> ChatError:
    if err.status == 401:
        return ChatError(401, "invalid_api_key", err.detail)
    message, param = err.detail, None
    field = _FIELD.match(message)
    if field:
        param = _PARAMS.get(field.group(1), field.group(1))
        if field.group(1) == "question":
            message = "the last user message" + message[len("question") :]
    return ChatError(400 if err.status == 422 else err.status, err.code, message, param)


def _location(loc: tuple[Any, ...]) -> str:
    """pydantic's ``("body", "messages", 0, "role")`` as OpenAI writes it: messages.[0].role."""
    return ".".join(f"[{x}]" if isinstance(x, int) else str(x) for x in loc if x != "body")


def _from_validation(errors: list[Any]) -> ChatError:
    first = errors[0] if errors else {}
    param = _location(tuple(first.get("loc", ()))) or None
    if first.get("type") == "extra_forbidden":
        return ChatError(400, "unknown_parameter", f"unrecognized request argument: {param}", param)
    status, code, message = _describe(errors)  # /v1/ask's wording
    return ChatError(400, code, message, None if status == 400 else param)


def chat_error(exc: Exception) -> ChatError | None:
    """The OpenAI-shaped error for anything a request can raise; None for a bug."""
    if isinstance(exc, ChatError):
        return exc
    if isinstance(exc, ApiError | MixragError | BusyError):
        return _from_api(api_error(exc))
    if isinstance(exc, RequestValidationError):
        return _from_validation(list(exc.errors()))
    if isinstance(exc, StarletteHTTPException):
        codes = {413: "too_large", 405: "method_not_allowed", 404: "not_found"}
        return ChatError(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))
    return None


def stream_error(event: dict[str, Any]) -> dict[str, Any]:
    """An ``error`` event of :class:`~mixrag.server.streaming.AnswerStream` in OpenAI's
    shape, for a ``data:`` line (OpenAI clients raise it as an APIError)."""
    code = str(event.get("error", "internal_error"))
    err = ChatError(500 if code in _SERVER_CODES else 400, code, str(event.get("detail", "")))
    return err.body()


class OpenAIRoute(APIRoute):
    """A route whose errors, from the token check to the handler, are OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                err = chat_error(exc)
                if err is None:
                    log.exception("internal error on %s %s", request.method, request.url.path)
                    err = ChatError(500, "internal_error", "internal error; see the server log")
                return err.response()

        return route
