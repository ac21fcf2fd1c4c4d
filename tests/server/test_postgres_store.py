"""The server over a PostgreSQL store: the same API as over an index folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers import make_docs
from tests.server.helpers import MILL_QUESTION, small_config

from mixrag.generator import TransformersGenerator
from mixrag.index.opening import open_index
from mixrag.server import create_app

LIGHTHOUSE = "The Gullrock lighthouse was built in 1873 on a granite reef and automated in 1962."


def test_serve_a_postgres_store(
    pg_store_url: str,
    tmp_path: Path,
    encoder: object,
    smollm2: TransformersGenerator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi.testclient import TestClient

    import mixrag.index.postgres as pg

    monkeypatch.setattr(pg, "default_workdir", lambda url, schema: tmp_path / "work")
    with open_index(pg_store_url, create=True, encoder=encoder) as index:  # type: ignore[arg-type]
        assert index.add([make_docs(tmp_path / "docs")]).ok
    app = create_app(small_config(pg_store_url), encoder=encoder, generator=smollm2)  # type: ignore[arg-type]
    with TestClient(app) as c:
        info = c.get("/v1/info").json()["index"]
        assert info["passages"] == 3 and info["store"] == "postgresql"
        r = c.post("/v1/ask", json={"question": MILL_QUESTION, "mode": "rag-sequence", "k": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["passages"]) == 3
        assert body["passages"][0]["passage"]["source"].endswith("mill.md")
        assert sum(p["posterior"] for p in body["passages"]) == pytest.approx(1.0, abs=1e-4)

        r = c.post("/v1/documents", files={"file": ("lighthouse.txt", LIGHTHOUSE.encode())})
        assert r.status_code == 201, r.text
        doc = r.json()["document"]
        assert Path(doc["path"]).parent == (tmp_path / "work" / "uploads").resolve()
        hits = c.get("/v1/search", params={"q": "Gullrock lighthouse", "k": 1}).json()["hits"]
        assert hits[0]["passage"]["text"] == LIGHTHOUSE
        assert c.delete(f"/v1/documents/{doc['id']}").status_code == 200
        assert c.get("/v1/info").json()["index"]["passages"] == 3
