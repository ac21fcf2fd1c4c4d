"""``mixrag mcp``: the MCP tools over stdin/stdout, for a client that starts the server itself.

Standard output carries nothing but the protocol. Loading the models happens before the
SDK takes over stdout, so it runs with file descriptor 1 pointed at stderr
(:func:`stdout_to_stderr`): a library that prints, from Python or from C, cannot corrupt
the stream. Logs go to stderr, which MCP clients keep as the server's log. The server
ends when the client closes stdin; the service is then closed (an ingest in flight
commits first).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mixrag.errors import NotAnIndexError
from mixrag.index.opening import index_exists

if TYPE_CHECKING:
    from mixrag.server.config import ServerConfig

log = logging.getLogger(__name__)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Inside: whatever is written to stdout (``sys.stdout`` or fd 1) goes to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def serve_stdio(config: ServerConfig) -> None:
    """Open the service (models load now), then answer MCP requests on stdin until it closes."""
    from mixrag.server.mcp.config import McpConfig
    from mixrag.server.mcp.tools import build_server
    from mixrag.server.service import Service

    mcp = config.mcp or McpConfig()
    if mcp.read_only and not index_exists(config.index):
        raise NotAnIndexError(
            f"no index at {config.index}: build one with `mixrag index`, or leave out "
            "--read-only to start with an empty one that add_document fills"
        )
    with stdout_to_stderr():
        service = Service.open(config)
    try:
        server = build_server(service, mcp)
        log.info("MCP over stdio: %s", config.index)
        server.run("stdio")
    finally:
        service.close()
