"""The index as an MCP (Model Context Protocol) tool server: over stdio and over HTTP.

* :mod:`~mixrag.server.mcp.config` — :class:`McpConfig`: which tools are offered.
* :mod:`~mixrag.server.mcp.tools` — :func:`build_server`: the tools (search, ask, score,
  list_documents, add_document, remove_document) over one
  :class:`~mixrag.server.service.Service`.
* :mod:`~mixrag.server.mcp.text` — the readable text each tool returns beside its JSON.
* :mod:`~mixrag.server.mcp.http` — the streamable HTTP transport mounted in the FastAPI
  app (``/mcp``, behind the same bearer token as ``/v1``).
* :mod:`~mixrag.server.mcp.stdio` — ``mixrag mcp``: the tools over stdin/stdout.

The MCP SDK is imported by those modules only, not here, so ``ServerConfig`` can hold an
:class:`McpConfig` without loading it.
"""

from mixrag.server.mcp.config import McpConfig

__all__ = ["McpConfig"]
