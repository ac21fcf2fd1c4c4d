"""Errors as HTTP responses: every user mistake a 4xx JSON body naming the problem.

The body is always ``{"error": <code>, "detail": <message>}``. Library errors
(:class:`~mixrag.errors.MixragError`) are mistakes in the request or the index's state
and map to a 4xx by type; request validation errors name each bad field; a body
that is not JSON is a 400. Anything else is a bug: a 500 with a generic message and
the traceback in the log.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mixrag.errors import (
    IndexLockedError,
    IndexMismatchError,
    LoadError,
    MixragError,
    ModelLoadError,
    NotAnIndexError,
    UnsupportedFileError,
)
from mixrag.server.concurrency import BusyError
from mixrag.server.uploads import BadNameError, UnsupportedTypeError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the server refuses: HTTP status, a short code, a message for the user."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


# Most specific first: the first matching class decides.
_STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (BadNameError, 400, "bad_file_name"),
    (UnsupportedTypeError, 415, "unsupported_file_type"),
    (UnsupportedFileError, 415, "unsupported_file_type"),
    (LoadError, 422, "unreadable_document"),
    (IndexLockedError, 409, "index_locked"),
    (IndexMismatchError, 409, "index_mismatch"),
    (NotAnIndexError, 409, "not_an_index"),
    (ModelLoadError, 503, "model_unavailable"),
    (MixragError, 400, "bad_request"),
    (BusyError, 503, "busy"),
)


def api_error(exc: Exception) -> ApiError:
    """The :class:`ApiError` for a library or lock error (ApiError itself passes through)."""
    if isinstance(exc, ApiError):
        return exc
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return ApiError(status, code, str(exc))
    raise TypeError(f"{type(exc).__name__} is not a user error") from exc


def error_body(err: ApiError) -> dict[str, str]:
    return {"error": err.code, "detail": err.detail}


def _response(err: ApiError) -> JSONResponse:
    headers = {"Retry-After": "2"} if err.status == 503 else None
    if err.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(error_body(err), status_code=err.status, headers=headers)


def _describe(errors: list[Any]) -> tuple[int, str, str]:
    """(status, code, message) for pydantic's validation errors."""
    parts = []
    for e in errors:
        if e.get("type") == "json_invalid":
            ctx = e.get("ctx", {}).get("error", "")
            return 400, "malformed_json", f"the body is not valid JSON: {ctx}".rstrip(": ")
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        msg = e.get("msg", "invalid")
        if "input" in e and e.get("type") not in ("missing",):
            shown = repr(e["input"])
            msg += f" (got {shown[:80] + '…' if len(shown) > 80 else shown})"
        parts.append(f"{loc}: {msg}")
    return 422, "invalid_request", "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception a route can raise to the JSON error body."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return _response(exc)

    @app.exception_handler(MixragError)
    async def _library(request: Request, exc: MixragError) -> JSONResponse:
        return _response(api_error(exc))

    @app.exception_handler(BusyError)
    async def _busy(request: Request, exc: BusyError) -> JSONResponse:
        return _response(api_error(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = _describe(list(exc.errors()))
        return _response(ApiError(status, code, message))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
        code = codes.get(exc.status_code, "http_error")
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no endpoint {request.method} {request.url.path}; see /docs"
        return _response(ApiError(exc.status_code, code, detail))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _response(ApiError(500, "internal_error", "internal error; see the server log"))
