"""Changing the index while it serves: upload, replace, fail to replace, remove."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.server.helpers import Served

from mixrag.server.uploads import file_id

LIGHTHOUSE = "The Gullrock lighthouse was built in 1873 on a granite reef and automated in 1962."
LIGHTHOUSE_2 = "The Gullrock lighthouse was built in 1874 and painted with red and white bands."


def _search(served: Served, q: str) -> list[str]:
    hits = served.client.get("/v1/search", params={"q": q, "k": 5}).json()["hits"]
    return [h["passage"]["text"] for h in hits]


def _count(served: Served) -> int:
    return int(served.client.get("/v1/info").json()["index"]["passages"])


def test_upload_replace_and_remove_a_file(served: Served) -> None:
    c = served.client
    before = _count(served)
    r = c.post("/v1/documents", files={"file": ("lighthouse.txt", LIGHTHOUSE.encode())})
    assert r.status_code == 201, r.text
    body = r.json()
    doc = body["document"]
    assert body["status"] == "added" and doc["uploaded"] and doc["name"] == "lighthouse.txt"
    stored = Path(doc["path"])
    assert stored == (served.index / "uploads" / "lighthouse.txt").resolve()
    assert stored.read_text() == LIGHTHOUSE and doc["id"] == file_id(doc["path"])
    assert _count(served) == before + 1
    assert LIGHTHOUSE in _search(served, "When was the Gullrock lighthouse built?")
    listed = {d["id"]: d for d in c.get("/v1/documents").json()["documents"]}
    assert listed[doc["id"]]["passages"] == 1

    # the same name again: the same document, replaced
    r = c.post("/v1/documents", files={"file": ("lighthouse.txt", LIGHTHOUSE_2.encode())})
    assert r.status_code == 200 and r.json()["status"] == "updated"
    assert r.json()["document"]["id"] == doc["id"]
    texts = _search(served, "Gullrock lighthouse")
    assert LIGHTHOUSE_2 in texts and LIGHTHOUSE not in texts
    r = c.post("/v1/documents", files={"file": ("lighthouse.txt", LIGHTHOUSE_2.encode())})
    assert r.status_code == 200 and r.json()["status"] == "unchanged"

    # a replacement that cannot be read keeps the indexed version, on disk too
    r = c.post("/v1/documents", files={"file": ("lighthouse.txt", b"\x00\x00 binary")})
    assert r.status_code == 422
    assert stored.read_text() == LIGHTHOUSE_2
    assert LIGHTHOUSE_2 in _search(served, "Gullrock lighthouse")
    assert not list((served.index / "uploads" / ".backup").glob("*"))

    r = c.delete(f"/v1/documents/{doc['id']}")
    assert r.status_code == 200 and r.json()["id"] == doc["id"]
    assert not stored.exists()
    assert _count(served) == before
    assert all("Gullrock" not in t for t in _search(served, "Gullrock lighthouse"))
    assert c.delete(f"/v1/documents/{doc['id']}").status_code == 404


def test_json_text_documents(served: Served) -> None:
    c = served.client
    r = c.post("/v1/documents", json={"title": "Gullrock Light", "text": LIGHTHOUSE})
    assert r.status_code == 201, r.text
    doc = r.json()["document"]
    assert doc["name"].startswith("gullrock-light-") and doc["name"].endswith(".json")
    hits = c.get("/v1/search", params={"q": "Gullrock lighthouse reef", "k": 1}).json()["hits"]
    assert hits[0]["passage"]["title"] == "Gullrock Light"
    # the same title replaces; a named file keeps its format
    again = c.post("/v1/documents", json={"title": "Gullrock Light", "text": LIGHTHOUSE_2})
    assert again.json()["document"]["id"] == doc["id"]
    named = c.post("/v1/documents", json={"name": "notes.md", "text": "# Notes\n\n" + LIGHTHOUSE})
    assert named.status_code == 201 and named.json()["document"]["name"] == "notes.md"
    for d in (doc, named.json()["document"]):
        assert c.delete(f"/v1/documents/{d['id']}").status_code == 200


def test_documents_indexed_elsewhere_are_listed_and_removable(served: Served) -> None:
    docs = served.client.get("/v1/documents").json()["documents"]
    tesla = next(d for d in docs if d["name"] == "tesla.txt")
    assert not tesla["uploaded"] and tesla["documents"] == 1


@pytest.mark.parametrize("name", ["notes.md", "data.jsonl", "page.html", "doc.txt.gz"])
def test_every_loader_format_can_be_uploaded(served: Served, name: str) -> None:
    import gzip

    content = {
        "notes.md": b"# Notes\n\nGullrock keeps a lamp.",
        "data.jsonl": b'{"title": "Gullrock", "text": "Gullrock keeps a lamp."}\n',
        "page.html": b"<html><body><p>Gullrock keeps a lamp.</p></body></html>",
        "doc.txt.gz": gzip.compress(b"Gullrock keeps a lamp."),
    }[name]
    r = served.client.post("/v1/documents", files={"file": (name, content)})
    assert r.status_code == 201, r.text
    assert served.client.delete(f"/v1/documents/{r.json()['document']['id']}").status_code == 200


def test_a_crash_during_indexing_rolls_the_upload_back(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = served.client.app.state.service  # type: ignore[attr-defined]
    c = served.client
    first = c.post("/v1/documents", files={"file": ("keep.txt", LIGHTHOUSE.encode())})
    assert first.status_code == 201
    stored = Path(first.json()["document"]["path"])

    def boom(paths: object, progress: object = None) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(service.index, "add", boom)
    with pytest.raises(RuntimeError):  # TestClient re-raises server errors
        c.post("/v1/documents", files={"file": ("keep.txt", LIGHTHOUSE_2.encode())})
    with pytest.raises(RuntimeError):
        c.post("/v1/documents", files={"file": ("new.txt", LIGHTHOUSE_2.encode())})
    monkeypatch.undo()
    assert stored.read_text() == LIGHTHOUSE  # the old file is back
    assert not (stored.parent / "new.txt").exists()
    assert LIGHTHOUSE in _search(served, "Gullrock lighthouse granite")
    assert c.delete(f"/v1/documents/{first.json()['document']['id']}").status_code == 200
