"""Upload names and the uploads folder, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixrag.server.config import default_extensions
from mixrag.server.streaming import TextStream, finite, sse
from mixrag.server.uploads import (
    BadNameError,
    UnsupportedTypeError,
    UploadStore,
    check_name,
    slug,
)

EXT = default_extensions()


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("notes.md", "notes.md"),
        ("  Report 2024 (final).PDF ", "Report 2024 (final).PDF"),
        ("data.json.gz", "data.json.gz"),
        ("a;b&c.txt", "a_b_c.txt"),
        ("café.txt", "café.txt"),
    ],
)
def test_good_names(name: str, stored: str) -> None:
    assert check_name(name, EXT) == stored


@pytest.mark.parametrize(
    "name", ["", "../x.md", "/abs.md", "a/b.md", "a\\b.md", "C:x.md", ".env.md", "..", "a\nb.md"]
)
def test_path_tricks_are_refused(name: str) -> None:
    with pytest.raises(BadNameError):
        check_name(name, EXT)


def test_suffixes_are_checked_against_the_allowed_list() -> None:
    with pytest.raises(UnsupportedTypeError, match=r"\.md"):
        check_name("x.exe", EXT)
    with pytest.raises(UnsupportedTypeError):
        check_name("x.pdf", (".md", ".txt"))


def test_slug() -> None:
    assert slug("Gullrock Light: A History!") == "gullrock-light-a-history"
    assert slug("東京") == "document"


def test_place_commit_rollback(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    first = store.place("a.txt", b"one")
    store.commit(first)
    assert first.backup is None and first.path.read_bytes() == b"one"
    second = store.place("a.txt", b"two")
    assert second.backup is not None and second.backup.read_bytes() == b"one"
    store.rollback(second)
    assert first.path.read_bytes() == b"one" and not second.backup.exists()
    new = store.place("b.txt", b"new")
    store.rollback(new)
    assert not new.path.exists()
    assert store.owns(first.path) and not store.owns(tmp_path / "elsewhere.txt")


def test_recover_after_a_crash(tmp_path: Path) -> None:
    import hashlib

    store = UploadStore(tmp_path)
    # a.txt: replaced, the replacement indexed -> keep it, drop the backup
    a = store.place("a.txt", b"a-old")
    a = store.place("a.txt", b"a-new")
    # b.txt: replaced, the replacement never indexed -> the old one comes back
    store.place("b.txt", b"b-old")
    b = store.place("b.txt", b"b-new")
    # c.txt: a new upload never indexed -> deleted
    c = store.place("c.txt", b"c")
    (store.root / ".d.txt.123.456.tmp").write_bytes(b"partial")
    indexed = {
        str(a.path): hashlib.sha256(b"a-new").hexdigest(),
        str(b.path): hashlib.sha256(b"b-old").hexdigest(),
    }
    store.recover(indexed)
    assert a.path.read_bytes() == b"a-new" and b.path.read_bytes() == b"b-old"
    assert not c.path.exists() and not (store.root / ".d.txt.123.456.tmp").exists()
    assert not any((store.root / ".backup").iterdir())


def test_text_stream_events() -> None:
    texts = {(1,): "19", (1, 2): "190", (1, 2, 3): "1901", (1, 2, 3, 4): "1901", (9,): "Paris"}
    s = TextStream(lambda ids: texts[ids], provisional=False)
    assert s.update((1,)) == {"text": "19", "delta": "19", "provisional": False}
    assert s.update((1, 2))["delta"] == "0"  # type: ignore[index]
    assert s.update((1, 2, 3))["delta"] == "1"  # type: ignore[index]
    assert s.update((1, 2, 3, 4)) is None  # an end token changes nothing visible
    assert s.update((9,)) == {"text": "Paris", "delta": None, "provisional": False}
    half = TextStream(lambda ids: "caf\ufffd", provisional=True)
    assert half.update((1,)) is None


def test_sse_format_has_no_inf() -> None:
    assert finite({"a": [float("-inf"), 1.0, float("nan")]}) == {"a": [None, 1.0, None]}
    assert sse("token", {"text": "a\nb"}) == 'event: token\ndata: {"text": "a\\nb"}\n\n'
