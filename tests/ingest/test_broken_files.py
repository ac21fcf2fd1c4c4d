"""Broken and password-protected files: each is a LoadError that names the file and why."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from mixrag.errors import LoadError
from mixrag.ingest.loaders import load_file
from tests.ingest.make_files import (
    WRITERS,
    Doc,
    Section,
    encrypt_ooxml,
    encrypt_pdf,
    make_epub,
    make_odt,
    truncate,
)

DOC = Doc(
    "Notes", [Section("Plans", ["We meet on Tuesday."], table=[["Day", "Room"], ["Tue", "4"]])]
)


def refused(path: Path, reason: str) -> None:
    with pytest.raises(LoadError, match=reason) as e:
        load_file(path)
    assert e.value.path == str(path)


@pytest.mark.parametrize("suffix", [".docx", ".xlsx", ".pptx"])
def test_password_protected_office_files(tmp_path: Path, suffix: str) -> None:
    plain = WRITERS[suffix](tmp_path / f"plain{suffix}", DOC)
    locked = encrypt_ooxml(plain, tmp_path / f"locked{suffix}")
    refused(locked, rf"password-protected {suffix[1:].upper()} \(encrypted\)")


def test_password_protected_pdf(tmp_path: Path) -> None:
    refused(encrypt_pdf(tmp_path / "locked.pdf", "secret plans"), "password-protected PDF")


def test_password_protected_odt(tmp_path: Path) -> None:
    """LibreOffice keeps an encrypted file a ZIP and says so in its manifest."""
    plain = make_odt(tmp_path / "plain.odt", DOC)
    locked = tmp_path / "locked.odt"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(locked, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "META-INF/manifest.xml":
                entry = b'manifest:full-path="content.xml" manifest:media-type="text/xml"'
                encrypted = b'<manifest:encryption-data manifest:checksum-type="SHA1/1K"/>'
                data = data.replace(
                    entry + b"/>", entry + b">" + encrypted + b"</manifest:file-entry>"
                )
                assert b"encryption-data" in data
            elif item.filename == "content.xml":
                data = bytes(range(256)) * 4  # ciphertext
            dst.writestr(item, data)
    refused(locked, "password-protected ODT")


def test_drm_epub_but_not_font_obfuscation(tmp_path: Path) -> None:
    plain = make_epub(tmp_path / "plain.epub", DOC)

    def with_encryption_xml(name: str, uri: str) -> Path:
        out = tmp_path / name
        with zipfile.ZipFile(plain) as src, zipfile.ZipFile(out, "w") as dst:
            for item in src.infolist():
                dst.writestr(item, src.read(item))
            dst.writestr(
                "META-INF/encryption.xml",
                '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                f'<EncryptedData><CipherData><CipherReference URI="{uri}"/></CipherData>'
                "</EncryptedData></encryption>",
            )
        return out

    refused(with_encryption_xml("drm.epub", "EPUB/chap_01.xhtml"), "DRM-encrypted EPUB")
    fonts = load_file(with_encryption_xml("fonts.epub", "EPUB/fonts/serif.otf"))
    assert "We meet on Tuesday." in fonts.documents[0].text


@pytest.mark.parametrize("suffix", [".docx", ".pptx", ".xlsx", ".odt", ".ods", ".odp", ".epub"])
def test_truncated_containers(tmp_path: Path, suffix: str) -> None:
    whole = WRITERS[suffix](tmp_path / f"whole{suffix}", DOC)
    cut = truncate(whole, tmp_path / f"cut{suffix}")
    refused(cut, rf"broken {suffix[1:].upper()}: not a complete ZIP container")


def test_truncated_pdf(tmp_path: Path) -> None:
    whole = WRITERS[".pdf"](tmp_path / "whole.pdf", DOC)
    refused(truncate(whole, tmp_path / "cut.pdf", keep=0.3), "PDF")


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.docx", b"", "empty file"),
        ("old.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "old binary Office file"),
        ("text.pptx", b"just some text, not a presentation", "broken PPTX"),
        ("latin1.csv", b"caf\xe9;1\n", "not UTF-8"),
    ],
)
def test_wrong_content_under_an_office_suffix(
    tmp_path: Path, name: str, data: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    refused(path, reason)


@pytest.mark.parametrize(
    ("suffix", "kind"), [(".docx", "DOCX"), (".pptx", "PPTX"), (".ods", "ODS")]
)
def test_a_zip_that_is_not_the_format(tmp_path: Path, suffix: str, kind: str) -> None:
    path = tmp_path / f"other{suffix}"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "a zip of something else")
    refused(path, rf"malformed {kind} \(|{kind} has no text")


def test_a_damaged_member_is_malformed_not_a_crash(tmp_path: Path) -> None:
    """A ZIP whose directory is whole but whose document part is corrupt (bad CRC)."""
    whole = WRITERS[".docx"](tmp_path / "whole.docx", DOC)
    data = bytearray(whole.read_bytes())
    with zipfile.ZipFile(whole) as zf:
        info = zf.getinfo("word/document.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 10, start + 60):
        data[i] ^= 0xFF
    bad = tmp_path / "damaged.docx"
    bad.write_bytes(bytes(data))
    refused(bad, r"malformed DOCX \(")
