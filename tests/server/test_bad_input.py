"""Every bad request gets a 4xx JSON error that names the problem: never a 500, never a hang."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.server.helpers import MILL_QUESTION, Served


def _error(r: object, status: int, *words: str) -> dict:  # type: ignore[type-arg]
    assert r.status_code == status, (r.status_code, r.text)  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert set(body) == {"error", "detail"}
    for w in words:
        assert w in body["detail"], (w, body)
    return body  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"question": ""}, ["question", "empty"]),
        ({"question": "   \n"}, ["question", "empty"]),
        ({"question": "x" * 201}, ["question", "201", "200"]),
        ({"question": MILL_QUESTION, "k": 0}, ["k", "1..5", "0"]),
        ({"question": MILL_QUESTION, "k": 6}, ["k", "1..5", "6"]),
        ({"question": MILL_QUESTION, "k": "many"}, ["k"]),
        ({"question": MILL_QUESTION, "mode": "magic"}, ["mode", "rag-sequence", "magic"]),
        ({"question": MILL_QUESTION, "method": "grep"}, ["method", "bm25", "grep"]),
        ({"question": MILL_QUESTION, "decoding": "slow"}, ["decoding", "thorough"]),
        ({"question": MILL_QUESTION, "beams": 9}, ["beams", "1..4"]),
        ({"question": MILL_QUESTION, "max_new_tokens": 0}, ["max_new_tokens"]),
        ({"question": MILL_QUESTION, "max_new_tokens": 13}, ["max_new_tokens", "1..12"]),
        ({"question": MILL_QUESTION, "questoin": "typo"}, ["questoin"]),
        ({}, ["question", "required"]),
        ({"question": 42}, ["question"]),
    ],
)
def test_bad_ask_bodies_are_422(served: Served, body: dict, words: list[str]) -> None:  # type: ignore[type-arg]
    _error(served.client.post("/v1/ask", json=body), 422, *words)
    # the same mistakes are refused before a stream starts
    r = served.client.post("/v1/ask", json=body, headers={"Accept": "text/event-stream"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("raw", [b"{not json", b'{"question": "x",}', b"\xff\xfe", b""])
def test_malformed_json_is_400(served: Served, raw: bytes) -> None:
    r = served.client.post("/v1/ask", content=raw, headers={"Content-Type": "application/json"})
    if raw:
        _error(r, 400, "JSON")
    else:
        assert r.status_code in (400, 422) and "error" in r.json()


def test_json_that_is_not_an_object_is_422(served: Served) -> None:
    _error(served.client.post("/v1/ask", json=["a question"]), 422)


def test_oversized_bodies_are_413_before_being_read(served: Served) -> None:
    _error(served.client.post("/v1/ask", json={"question": "x" * (2 << 20)}), 413, "limit")


def test_chunked_bodies_are_cut_off_at_the_limit(served: Served) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536

    r = served.client.post(
        "/v1/documents",
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=zzz"},
    )
    _error(r, 413, "limit")


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"q": ""}, ["question", "empty"]),
        ({"q": "x" * 201}, ["question"]),
        ({"q": MILL_QUESTION, "k": 0}, ["k", "1..5"]),
        ({"q": MILL_QUESTION, "k": 99}, ["k", "1..5"]),
        ({"q": MILL_QUESTION, "method": "grep"}, ["method", "dense"]),
        ({"k": 3}, ["q", "required"]),
    ],
)
def test_bad_searches_are_422(served: Served, params: dict, words: list[str]) -> None:  # type: ignore[type-arg]
    _error(served.client.get("/v1/search", params=params), 422, *words)


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        ("../evil.md", 400, ["path"]),
        ("../../etc/passwd.txt", 400, ["path"]),
        ("/etc/evil.md", 400, ["path"]),
        ("sub/dir.md", 400, ["path"]),
        ("..\\evil.md", 400, ["path"]),
        ("C:evil.md", 400, ["path"]),
        (".hidden.md", 400, ["hidden"]),
        ("..", 400, []),
        ("bad\x01name.md", 400, ["control"]),
        ("notes.exe", 415, ["unsupported", ".md"]),
        ("notes", 415, ["unsupported"]),
        ("notes.md.exe", 415, ["unsupported"]),
    ],
)
def test_bad_file_names_are_refused(
    served: Served, name: str, status: int, words: list[str]
) -> None:
    if "\x01" not in name:  # httpx percent-encodes control characters in a multipart name
        files = {"file": (name, b"Some harmless text about anything.", "text/plain")}
        _error(served.client.post("/v1/documents", files=files), status, *words)
    # the same names sent as JSON text
    r = served.client.post("/v1/documents", json={"name": name, "text": "Some harmless text."})
    _error(r, status, *words)
    assert served.client.get("/v1/info").json()["index"]["documents"] == 3


def test_a_raw_multipart_path_is_refused(served: Served) -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="../../x.md"\r\n'
        b"Content-Type: text/plain\r\n\r\nsome text\r\n--b--\r\n"
    )
    r = served.client.post(
        "/v1/documents", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    _error(r, 400, "path")
    assert not (served.index.parent / "x.md").exists()


def test_oversized_upload_is_413_and_indexes_nothing(served: Served) -> None:
    big = b"word " * (70 * 1024 // 5)  # 70 KiB against a 64 KiB limit
    files = {"file": ("big.txt", big, "text/plain")}
    _error(served.client.post("/v1/documents", files=files), 413, "limit")
    assert not (served.index / "uploads" / "big.txt").exists()
    assert served.client.get("/v1/info").json()["index"]["documents"] == 3


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("binary.txt", b"\x00\x01\x02 binary", ["binary"]),
        ("latin1.txt", "caf\xe9 au lait".encode("latin-1"), ["UTF-8"]),
        ("broken.json", b'{"text": ', ["JSON"]),
        ("empty.md", b"   \n", ["empty"]),
        ("fake.pdf", b"this is not a PDF at all", []),
    ],
)
def test_unreadable_uploads_are_422_and_lose_nothing(
    served: Served, name: str, data: bytes, words: list[str]
) -> None:
    files = {"file": (name, data, "application/octet-stream")}
    _error(served.client.post("/v1/documents", files=files), 422, *words)
    assert not (served.index / "uploads" / name).exists()
    assert served.client.get("/v1/info").json()["index"]["passages"] == 3


def test_other_document_mistakes(served: Served) -> None:
    c = served.client
    _error(c.post("/v1/documents", content=b"text", headers={"Content-Type": "text/plain"}), 415)
    _error(c.post("/v1/documents", data={"other": "x"}, files={"x": ("a.md", b"t")}), 422, "file")
    _error(c.post("/v1/documents", json={"text": "t"}), 422, "title", "name")
    _error(c.post("/v1/documents", json={"title": "T", "name": "t.md", "text": "t"}), 422)
    _error(c.post("/v1/documents", json={"title": "T", "text": "  "}), 422, "text")
    _error(c.post("/v1/documents", json={"title": " ", "text": "t"}), 422, "title")
    _error(c.post("/v1/documents", json={"title": "T"}), 422, "text")
    _error(
        c.post("/v1/documents", content=b"{oops", headers={"Content-Type": "application/json"}), 400
    )


def test_unknown_documents_and_endpoints_are_404(served: Served) -> None:
    c = served.client
    _error(c.delete("/v1/documents/0123456789abcdef"), 404, "0123456789abcdef")
    _error(c.delete("/v1/documents/..%2F..%2Fetc"), 404)
    _error(c.delete("/v1/documents/not-an-id"), 404, "16 hex")
    _error(c.get("/v1/nothing"), 404, "/v1/nothing")
    assert c.put("/v1/ask", json={}).status_code == 405
