"""The HTTP server: a FastAPI app over one index and one generator, and its web page.

* :mod:`~mixrag.server.config` — :class:`ServerConfig`: address, token, request limits.
* :mod:`~mixrag.server.service` — what each endpoint does, callable without HTTP.
* :mod:`~mixrag.server.concurrency` — the index's readers-writer lock, the generator's thread.
* :mod:`~mixrag.server.uploads` — uploaded files under ``<index>/uploads/``, safe names.
* :mod:`~mixrag.server.streaming` — the answer as Server-Sent Events.
* :mod:`~mixrag.server.errors` — every user mistake as a 4xx JSON error.
* :mod:`~mixrag.server.schemas` — request and response bodies (the OpenAPI schema).
* :mod:`~mixrag.server.chat` — the OpenAI-compatible chat API (``/v1/chat/completions``).
* :mod:`~mixrag.server.app` — :func:`create_app`: routes, auth, body limits, the page.
* :mod:`~mixrag.server.mcp` — the service as MCP tools: at ``/mcp``, and over stdio.

FastAPI and uvicorn are imported here, so ``import mixrag`` does not need them.
"""

from mixrag.server.app import create_app
from mixrag.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
