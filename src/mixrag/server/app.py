"""The FastAPI application: routes, auth, body limits, the web page. Routes only parse and format.

``create_app(config)`` loads the models once and returns the app; uvicorn serves it
(``mixrag serve``). Endpoints (all but ``/healthz`` and the page's own files need
``Authorization: Bearer <token>`` when the server has a token):

    POST   /v1/ask              answer; streamed as Server-Sent Events on request
    GET    /v1/search           retrieval only
    GET    /v1/documents        the indexed files
    POST   /v1/documents        upload a file (multipart) or JSON text
    DELETE /v1/documents/{id}   remove a file from the index
    GET    /v1/info             index statistics, models, limits
    POST   /v1/chat/completions OpenAI-compatible chat (mixrag.server.chat); GET /v1/models
    GET    /healthz             liveness, no auth
    POST   /mcp                 the MCP tools (streamable HTTP; mixrag.server.mcp)
    GET    /                    the web page; /docs and /openapi.json describe the API

The page (``/``, ``/static``) holds no data and stays open: a browser cannot send a
bearer header when it navigates, so the page asks for the token and sends it with every
API call. With a token, ``/openapi.json`` needs it too and the interactive ``/docs``
(which would fetch the schema without it) is off.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mixrag.server.chat.routes import chat_router
from mixrag.server.concurrency import BusyError
from mixrag.server.config import ServerConfig
from mixrag.server.errors import ApiError, install_error_handlers
from mixrag.server.params import resolve
from mixrag.server.schemas import (
    AnswerOut,
    AskRequest,
    DocumentOut,
    DocumentsOut,
    ErrorOut,
    HealthOut,
    Method,
    SearchOut,
    TextDocument,
    UploadOut,
)
from mixrag.server.service import Service
from mixrag.server.streaming import AnswerStream, finite

if TYPE_CHECKING:
    from mixrag.encoders.sentence import SentenceTransformerEncoder
    from mixrag.generator.hf import TransformersGenerator
    from mixrag.generator.vllm import VLLMGenerator

log = logging.getLogger(__name__)

STATIC = Path(str(files("mixrag.server") / "static"))
# Request bodies other than uploads are small JSON; anything larger is refused unread.
MAX_BODY = 2**20
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 404, 409, 413, 415, 422, 503)
}


class _TooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


class BodyLimit:
    """Refuse request bodies over a per-path limit: by Content-Length before reading,
    and while reading for chunked bodies (the route then answers 413)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            detail = (
                "bad Content-Length header"
                if not declared.isdigit()
                else f"the request body is {int(declared)} bytes; the limit is {limit} bytes"
            )
            status = 400 if not declared.isdigit() else 413
            code = "bad_request" if status == 400 else "too_large"
            response = JSONResponse({"error": code, "detail": detail}, status_code=status)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        await self.app(scope, counted, send)


def _bearer(token: str) -> Callable[..., Awaitable[None]]:
    scheme = HTTPBearer(auto_error=False, description="The token of `mixrag serve --token-file`.")
    expected = token.encode("utf-8")

    # a default, not Annotated: the annotation must resolve at module level (``scheme`` is local)
    async def check(credentials: HTTPAuthorizationCredentials | None = Depends(scheme)) -> None:
        given = b"" if credentials is None else credentials.credentials.encode("utf-8")
        # compare_digest: the time taken does not depend on where the strings differ
        if credentials is None or not hmac.compare_digest(given, expected):
            raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>'")

    return check


def _wants_stream(request: Request, body: AskRequest) -> bool:
    return body.stream or "text/event-stream" in request.headers.get("accept", "")


def api_router(service: Service) -> APIRouter:
    """The ``/v1`` endpoints over one service."""
    router = APIRouter(prefix="/v1", responses=_ERRORS)

    @router.post(
        "/ask",
        response_model=AnswerOut,
        responses={200: {"content": {"text/event-stream": {}}}},
        summary="Answer a question (JSON, or Server-Sent Events when streaming)",
    )
    async def ask(request: Request, body: AskRequest) -> Any:
        """The answer, log p(y|x) and every passage with its prior p(z|x) and posterior
        p(z|x,y). With ``stream: true`` or ``Accept: text/event-stream``: events
        ``passages``, ``token``..., ``answer`` (see README, "Server")."""
        params = resolve(
            service.config,
            body.question,
            mode=body.mode,
            k=body.k,
            method=body.method,
            beams=body.beams,
            decoding=body.decoding,
            max_new_tokens=body.max_new_tokens,
            min_confidence=body.min_confidence,
            min_relevance=body.min_relevance,
            alternatives=body.alternatives,
        )
        if service.batcher.full:  # refuse before retrieving
            raise BusyError(f"{service.batcher.pending} answers are running or queued; retry soon")
        hits = await run_in_threadpool(service.retrieve, params)
        if not _wants_stream(request, body):
            answer = await asyncio.wrap_future(service.submit_answer(params, hits))
            return finite(answer.to_dict())
        stream = AnswerStream(service, params, hits)  # queued now: a full queue is still a 503
        return StreamingResponse(
            stream.events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.get("/search", response_model=SearchOut, summary="Retrieve passages, no answer")
    def search(
        q: Annotated[str, Query(description="The question.")],
        k: Annotated[int | None, Query(description="Passages to return, 1..max_k.")] = None,
        method: Annotated[Method | None, Query(description="Retrieval method.")] = None,
    ) -> Any:
        hits = service.search(q, k, method)
        return finite(
            {
                "question": q,
                "method": method or service.config.method,
                "k": k or service.config.k_for(),
                "hits": [h.to_dict() for h in hits],
            }
        )

    @router.get("/documents", response_model=DocumentsOut, summary="List indexed files")
    def documents() -> Any:
        return {"documents": service.documents()}

    @router.post(
        "/documents",
        response_model=UploadOut,
        status_code=201,
        summary="Add a document: a file (multipart field 'file') or JSON text",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"file": {"type": "string", "format": "binary"}},
                            "required": ["file"],
                        }
                    },
                    "application/json": {"schema": {"$ref": "#/components/schemas/TextDocument"}},
                },
            }
        },
    )
    async def add_document(request: Request) -> Any:
        """Index an uploaded file (stored as ``<index>/uploads/<name>``; the same name again
        replaces it), or JSON ``{"title", "text"}`` / ``{"name", "text"}``. 201 when added,
        200 when it replaced or matched a document of the same name."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            status, doc, report = await _upload(request, service)
        elif kind == "application/json":
            try:
                text = TextDocument.model_validate_json(await request.body())
            except ValidationError as e:
                from fastapi.exceptions import RequestValidationError

                raise RequestValidationError(e.errors()) from None
            status, doc, report = await run_in_threadpool(
                service.add_text, text.text, text.title, text.name
            )
        else:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"send multipart/form-data (a 'file' field) or application/json, not {kind!r}",
            )
        code = 201 if status == "added" else 200
        return JSONResponse({"status": status, "document": doc, "report": report}, status_code=code)

    @router.delete(
        "/documents/{doc_id}", response_model=DocumentOut, summary="Remove an indexed file"
    )
    def remove_document(doc_id: str) -> Any:
        return service.remove(doc_id)

    @router.get("/info", summary="Index statistics, models, limits")
    def info() -> dict[str, Any]:
        return finite(service.info())

    return router


async def _upload(request: Request, service: Service) -> tuple[str, dict[str, Any], Any]:
    form = await request.form(max_files=1, max_fields=4)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "invalid_request", "multipart body needs a 'file' field")
        limit = service.config.max_upload_bytes
        data = await upload.read(limit + 1)
        name = upload.filename or ""
    finally:
        await form.close()
    return await run_in_threadpool(service.add_file, name, data)


def page_router() -> APIRouter:
    """``/`` (the page) and ``/healthz``: never behind the token."""
    router = APIRouter()

    @router.get("/healthz", response_model=HealthOut, summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    return router


def create_app(
    config: ServerConfig,
    *,
    service: Service | None = None,
    encoder: SentenceTransformerEncoder | None = None,
    generator: TransformersGenerator | VLLMGenerator | None = None,
) -> FastAPI:
    """The app over ``config.index``; models load here, once (or pass already loaded ones)."""
    from mixrag import __version__

    svc = service or Service.open(config, encoder=encoder, generator=generator)
    mcp_sessions: Callable[[], AbstractAsyncContextManager[Any]] = nullcontext

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp_sessions():  # /mcp's session manager runs while the app does
            yield
        await run_in_threadpool(svc.close)

    app = FastAPI(
        title="mixrag",
        version=__version__,
        # with a token the schema is an authorised endpoint (below) and /docs is off
        openapi_url=None if config.token else "/openapi.json",
        docs_url=None if config.token else "/docs",
        redoc_url=None,
        description="Retrieval-augmented generation as a mixture model: answers with the "
        "prior p(z|x) and posterior p(z|x,y) of every passage.",
        lifespan=lifespan,
    )
    app.state.service = svc
    install_error_handlers(app)
    upload_limit = 2 * config.max_upload_bytes + 64 * 1024  # multipart / JSON escaping

    def limit_for(path: str) -> int:
        return upload_limit if path.rstrip("/") in ("/v1/documents", "/mcp") else MAX_BODY

    app.add_middleware(BodyLimit, limit_for=limit_for)
    app.include_router(page_router())
    auth = [] if config.token is None else [Depends(_bearer(config.token))]
    app.include_router(api_router(svc), dependencies=auth)
    app.include_router(chat_router(svc), dependencies=auth)
    if config.token is not None:

        @app.get("/openapi.json", include_in_schema=False, dependencies=auth)
        def openapi() -> JSONResponse:
            return JSONResponse(app.openapi())

    if config.mcp is not None:
        from mixrag.server.mcp.http import mount_mcp

        mcp_sessions = mount_mcp(app, svc, config)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
