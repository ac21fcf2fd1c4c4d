"""McpConfig: what the MCP tool server offers (``mixrag mcp``, and ``/mcp`` in ``mixrag serve``)."""

from __future__ import annotations

from dataclasses import dataclass

READ_TOOLS = ("search", "ask", "score", "list_documents")
WRITE_TOOLS = ("add_document", "remove_document")


@dataclass(frozen=True)
class McpConfig:
    """The MCP tools over one service.

    read_only: offer only the reading tools (``READ_TOOLS``). Otherwise the writing ones
               (``WRITE_TOOLS``) are offered too, when the index's folder is writable.
    """

    read_only: bool = False
