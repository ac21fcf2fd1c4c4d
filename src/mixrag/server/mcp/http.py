"""The MCP tools over streamable HTTP, mounted at ``/mcp`` in the FastAPI app of ``mixrag serve``.

The SDK's session manager serves the endpoint; it runs inside the app's lifespan (the
context :func:`mount_mcp` returns), and the tools call the app's one
:class:`~mixrag.server.service.Service`, so the models are loaded once for both. Settings:

* stateless, with JSON responses: each POST carries one JSON-RPC message and gets its
  answer as one JSON body. No session state lives in the server (a restart or several
  workers lose nothing), and the tools need no server-to-client messages.
* the same bearer token as ``/v1``: a request without it is a 401 with the API's error
  body, before the SDK sees it.
* the SDK's DNS-rebinding protection when the server listens on loopback (a ``Host``
  header other than 127.0.0.1 / localhost / [::1] is refused), as for its own servers.
* request bodies up to the upload limit (``add_document`` carries a document).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mixrag.server.errors import ApiError, error_body
from mixrag.server.mcp.tools import build_server

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mixrag.server.config import ServerConfig
    from mixrag.server.service import Service

PATH = "/mcp"


def body_limit(config: ServerConfig) -> int:
    """Largest request body ``/mcp`` takes: an ``add_document`` of the largest upload,
    JSON-escaped, with its envelope."""
    return 2 * config.max_upload_bytes + 64 * 1024


class BearerGuard:
    """An ASGI app that lets a request through only with ``Authorization: Bearer <token>``.

    The comparison takes the same time wherever the strings differ (``hmac.compare_digest``);
    a refusal is the ``/v1`` endpoints' 401: ``{"error": "unauthorized", "detail"}`` with
    ``WWW-Authenticate: Bearer``.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = token.encode("utf-8")

    def authorized(self, scope: Scope) -> bool:
        scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode("utf-8"), self.expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.authorized(scope):
            err = ApiError(401, "unauthorized", "send 'Authorization: Bearer <token>'")
            response = JSONResponse(
                error_body(err), status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def mount_mcp(
    app: FastAPI, service: Service, config: ServerConfig
) -> Callable[[], AbstractAsyncContextManager[None]]:
    """Add the ``/mcp`` endpoint to ``app``; returns the context the app's lifespan must
    run it in (the SDK's session manager)."""
    assert config.mcp is not None
    server = build_server(service, config.mcp)
    server.streamable_http_app(  # makes the session manager; its own Starlette app is unused
        streamable_http_path=PATH,
        stateless_http=True,
        json_response=True,
        host=config.host,
        max_request_body_size=body_limit(config),
    )
    manager = server.session_manager
    endpoint: ASGIApp = StreamableHTTPASGIApp(manager)
    if config.token is not None:
        endpoint = BearerGuard(endpoint, config.token)
    app.router.routes.append(Route(PATH, endpoint=endpoint))
    return manager.run
