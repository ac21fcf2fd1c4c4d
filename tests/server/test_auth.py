"""With a token every /v1 endpoint needs it; /healthz, the page and the API description do not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.server.helpers import MILL_QUESTION, TOKEN, build_index, small_config

from mixrag.answer import DEFAULT_K
from mixrag.errors import MixragError
from mixrag.generator import TransformersGenerator
from mixrag.server import ServerConfig, create_app
from mixrag.server.config import read_token_file
from mixrag.server.errors import ApiError
from mixrag.server.params import resolve


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, encoder: object, smollm2: TransformersGenerator
) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    index = build_index(tmp_path_factory.mktemp("auth"), encoder)
    app = create_app(small_config(index, token=TOKEN), encoder=encoder, generator=smollm2)  # type: ignore[arg-type]
    with TestClient(app) as c:
        yield c


CALLS = [
    ("get", "/v1/info", {}),
    ("get", "/v1/search", {"params": {"q": MILL_QUESTION}}),
    ("get", "/v1/documents", {}),
    ("post", "/v1/ask", {"json": {"question": MILL_QUESTION, "mode": "closed-book"}}),
    ("post", "/v1/documents", {"json": {"title": "T", "text": "Some text."}}),
    ("delete", "/v1/documents/0123456789abcdef", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), CALLS)
def test_v1_needs_the_token(client: Any, method: str, path: str, kwargs: dict) -> None:  # type: ignore[type-arg]
    call = getattr(client, method)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        r = call(path, headers=headers, **kwargs)
        assert r.status_code == 401, (path, headers, r.text)
        assert r.json()["error"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
    ok = call(path, headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs)
    assert ok.status_code in (200, 201, 404), ok.text  # 404: the made-up document id


def test_bad_input_from_a_stranger_is_still_401(client: Any) -> None:
    r = client.post("/v1/ask", json={"question": 42, "mode": "magic"})
    assert r.status_code == 401


def test_public_endpoints(client: Any) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200  # the page holds no data; it asks for the token
    assert client.get("/static/app.js").status_code == 200
    # the API description is behind the token; the interactive /docs is off
    assert client.get("/openapi.json").status_code == 401
    schema = client.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert schema.status_code == 200 and "/v1/ask" in schema.json()["paths"]
    assert client.get("/docs").status_code == 404
    info = client.get("/v1/info", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert info["auth"] is True


def test_config_and_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(f"  {TOKEN}\n")
    assert read_token_file(token) == TOKEN
    token.write_text("\n")
    with pytest.raises(MixragError, match="empty"):
        read_token_file(token)
    with pytest.raises(MixragError, match="cannot read"):
        read_token_file(tmp_path / "missing")
    assert TOKEN not in repr(ServerConfig(index=tmp_path, token=TOKEN))
    assert ServerConfig(index=tmp_path).is_loopback
    assert not ServerConfig(index=tmp_path, host="0.0.0.0").is_loopback
    by_mode = ServerConfig(index=tmp_path)  # no k: each mode its measured default
    assert by_mode.k_for() == by_mode.k_for("rag-sequence") == DEFAULT_K["rag-sequence"]
    assert by_mode.k_for("concat") == DEFAULT_K["concat"]
    assert ServerConfig(index=tmp_path, max_k=2).k_for() == 2
    assert ServerConfig(index=tmp_path, k=4).k_for("concat") == 4
    # no beams: the mode's default width (RAG-Sequence 2), a given one checked and kept
    assert resolve(by_mode, "q?").beams is None
    assert resolve(by_mode, "q?").rag_config().beams == 2
    assert resolve(by_mode, "q?", mode="concat").rag_config().beams == 1
    assert resolve(by_mode, "q?", beams=1).rag_config().beams == 1
    with pytest.raises(ApiError, match=r"beams: must be in 1\.\.4, got 9"):
        resolve(by_mode, "q?", beams=9)
    greedy = ServerConfig(index=tmp_path, beams=1)  # mixrag serve --beams 1
    assert resolve(greedy, "q?").rag_config().beams == 1
    assert resolve(greedy, "q?", beams=2).rag_config().beams == 2
    with pytest.raises(MixragError, match=r"beams must be in 1\.\.max_beams=4, got 5"):
        ServerConfig(index=tmp_path, beams=5)
    for bad in ({"k": 30}, {"max_k": 0}, {"mode": "x"}, {"extensions": (".exe",)}):
        with pytest.raises(MixragError):
            ServerConfig(index=tmp_path, **bad)  # type: ignore[arg-type]
