from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from mixrag.errors import LoadError, UnsupportedFileError
from mixrag.ingest.loaders import discover, load_file


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def test_txt_title_from_file_name(tmp_path: Path) -> None:
    f = load_file(write(tmp_path / "company_history.txt", "Founded in 1901 by Ada."))
    (d,) = f.documents
    assert d.title == "company history"
    assert d.text == "Founded in 1901 by Ada."
    assert len(f.sha256) == 64


def test_markdown_title_and_links(tmp_path: Path) -> None:
    md = (
        "# The Mill\n\nBuilt by [Ada Smith](http://x.example) in 1901.\n\n"
        "## History\n![logo](l.png)"
    )
    (d,) = load_file(write(tmp_path / "mill.md", md)).documents
    assert d.title == "The Mill"
    assert "Ada Smith" in d.text and "http" not in d.text and "##" not in d.text


def test_html_drops_scripts_and_styles(tmp_path: Path) -> None:
    html = """<html><head><title>Mill page</title><style>body{color:red}</style>
    <script>var secret = 1;</script></head><body><h1>Heading</h1>
    <p>The mill was built in 1901.</p><script>alert('x')</script><noscript>enable js</noscript>
    </body></html>"""
    (d,) = load_file(write(tmp_path / "p.html", html)).documents
    assert d.title == "Mill page"
    assert "built in 1901" in d.text
    for junk in ("secret", "alert", "color:red", "enable js"):
        assert junk not in d.text


def test_pdf_keeps_page_numbers(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Mill report")
    pdf.set_font("helvetica", size=12)
    for text in ("The mill was founded in 1901.", "It closed in 1975 after a fire."):
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    path = tmp_path / "report.pdf"
    pdf.output(str(path))
    (d,) = load_file(path).documents
    assert d.title == "Mill report"
    assert [s.metadata["page"] for s in d.segments] == [1, 2]
    assert "1975" in d.segments[1].text


def test_malformed_pdf_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="PDF"):
        load_file(write(tmp_path / "bad.pdf", b"%PDF-1.4 garbage garbage"))


def test_json_records_and_metadata(tmp_path: Path) -> None:
    recs = [{"id": "a", "title": "A", "text": "alpha", "year": 1901}, {"text": "beta"}]
    f = load_file(write(tmp_path / "r.json", json.dumps(recs)))
    assert [(d.key, d.title, d.text) for d in f.documents] == [
        ("a", "A", "alpha"),
        ("1", "", "beta"),
    ]
    assert f.documents[0].metadata == {"year": 1901}


def test_jsonl_bad_lines_are_warnings_with_line_numbers(tmp_path: Path) -> None:
    lines = ['{"text": "one"}', "{not json", "", '{"title": "no text"}', '{"text": "four"}']
    f = load_file(write(tmp_path / "r.jsonl", "\n".join(lines)))
    assert [d.text for d in f.documents] == ["one", "four"]
    assert any("line 2" in w and "malformed JSON" in w for w in f.warnings)
    assert any("line 4" in w and "'text'" in w for w in f.warnings)


def test_jsonl_with_no_valid_record_fails(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no valid records"):
        load_file(write(tmp_path / "r.jsonl", "{bad\n[1,2]\n"))


def test_squad_paragraphs_titled_by_article(tmp_path: Path) -> None:
    squad = {
        "data": [
            {
                "title": "Nikola_Tesla",
                "paragraphs": [
                    {"context": "Tesla was born in 1856.", "qas": []},
                    {"context": "He died."},
                ],
            }
        ]
    }
    path = tmp_path / "s.json.gz"
    path.write_bytes(gzip.compress(json.dumps(squad).encode()))
    f = load_file(path)
    assert [(d.key, d.title) for d in f.documents] == [
        ("0:0", "Nikola Tesla"),
        ("0:1", "Nikola Tesla"),
    ]
    assert f.documents[0].metadata == {"article": 0, "paragraph": 0}


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match=r"malformed JSON at line 2 column"):
        load_file(write(tmp_path / "x.json", '{"a":\n  }'))


def test_json_without_text_is_explained(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="neither SQuAD"):
        load_file(write(tmp_path / "x.json", '{"foo": 1}'))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"  \n\t ", "empty file"),
        (b"abc\x00\x01def", "binary content"),
        (b"caf\xe9 au lait", r"not UTF-8 text \(byte 0xe9 at offset 3\)"),
    ],
)
def test_bad_text_files(tmp_path: Path, data: bytes, reason: str) -> None:
    with pytest.raises(LoadError, match=reason) as e:
        load_file(write(tmp_path / "f.txt", data))
    assert e.value.path.endswith("f.txt")


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFileError, match=r"unsupported file type '\.png'"):
        load_file(write(tmp_path / "x.png", b"\x89PNG"))


def test_bad_gzip(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="gzip"):
        load_file(write(tmp_path / "x.json.gz", b"not gzip at all"))


def test_discover_recurses_skips_hidden_and_sorts_by_support(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "a")
    write(tmp_path / "sub" / "b.md", "b")
    write(tmp_path / "sub" / "c.png", b"\x89PNG")
    write(tmp_path / ".git" / "d.txt", "hidden")
    found = discover([tmp_path, tmp_path / "a.txt", tmp_path / "missing.txt"])
    assert [p.name for p in found.files] == ["a.txt", "b.md"]
    assert [p.name for p in found.unsupported] == ["c.png"]
    assert found.missing == [str(tmp_path / "missing.txt")]
