"""Settings, builders and parsers shared by the server tests."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import make_docs

from mixrag.index.folder import Index
from mixrag.server import ServerConfig

MILL_QUESTION = "In which year was the Riverside Mill founded?"
TOKEN = "s3cret-token"


def small_config(index: Path, **overrides: Any) -> ServerConfig:
    settings: dict[str, Any] = {
        "index": index,
        "model": "smollm2-135m",
        "max_question_chars": 200,
        "max_k": 5,
        "k": 3,
        "max_upload_bytes": 64 * 1024,
        "max_new_tokens": 12,
        "max_waiting": 16,
        # SmolLM2 gives the right answers of the test index p(y|x) < the default threshold
        # (set for the default model); the tests that abstain set their own threshold
        "min_confidence": 0.0,
    }
    settings.update(overrides)
    return ServerConfig(**settings)


def build_index(root: Path, encoder: object) -> Path:
    index = Index.open(root / "idx", create=True, encoder=encoder)  # type: ignore[arg-type]
    report = index.add([make_docs(root / "docs")])
    assert report.ok
    index.close()
    return root / "idx"


@dataclass
class Served:
    client: Any  # fastapi.testclient.TestClient
    index: Path
    config: ServerConfig


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event, data) of a Server-Sent Events body; comments skipped."""
    out = []
    for block in text.split("\n\n"):
        name, data = "message", []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if data:
            out.append((name, json.loads("\n".join(data))))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port in a thread: its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def require_browser() -> None:
    """Skip without headless Chromium and selenium, except in CI (``CI=true``): fail."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        reason = (
            f"browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium driven by selenium, 1280 x 1000."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,1000")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
