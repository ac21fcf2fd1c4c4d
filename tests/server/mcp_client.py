"""A ``mixrag mcp`` process spawned over stdio by the official MCP client SDK, as a client
app would, driven from synchronous tests (test_mcp_stdio.py, the vLLM tests)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

ENV = ("PYTHONPATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "CI")


def server_params(index: Path, *options: str) -> Any:
    from mcp import StdioServerParameters

    args = ["-m", "mixrag.cli.main", "--threads", "1", "mcp", "--index", str(index)]
    args += ["--model", "smollm2-135m", "-k", "3", "--max-k", "5", "--max-question-chars", "200"]
    env = {name: os.environ[name] for name in ENV if name in os.environ}
    return StdioServerParameters(
        command=sys.executable, args=[*args, *options], env={**env, "OMP_NUM_THREADS": "1"}
    )


class Session:
    """One MCP client session with a spawned ``mixrag mcp``, used from synchronous tests.

    A task holds the client open (the SDK's client must be entered and left in one task)
    while the tests' calls run on the same event loop.
    """

    def __init__(self, params: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.params = params
        self.transport_errors: list[Exception] = []
        self.client: Any = None
        self.ready = asyncio.Event()
        self.closing = asyncio.Event()
        self.holder: asyncio.Task[None] | None = None

    async def _record(self, message: Any) -> None:
        if isinstance(message, Exception):  # a line of stdout that is not the protocol
            self.transport_errors.append(message)

    async def _hold(self) -> None:
        from mcp import Client

        async with Client(self.params, cache=None, message_handler=self._record) as client:
            self.client = client
            self.ready.set()
            await self.closing.wait()

    def open(self) -> None:
        self.holder = self.loop.create_task(self._hold())
        ready = self.loop.create_task(self.ready.wait())
        self.loop.run_until_complete(
            asyncio.wait([ready, self.holder], return_when="FIRST_COMPLETED")
        )
        if self.holder.done():  # the server did not start: its error
            self.holder.result()

    def run(self, method: str, *args: Any) -> Any:
        return self.loop.run_until_complete(getattr(self.client, method)(*args))

    def close(self) -> None:
        self.closing.set()
        assert self.holder is not None
        self.loop.run_until_complete(self.holder)
        self.loop.close()
