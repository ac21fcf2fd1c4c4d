"""Parsing throughput per format on a generated corpus, and how much of each file survives.

    python bench/parse_formats.py --files 5 --out bench/results/parse_formats.json

Writes ``--files`` documents per format (tests/ingest/make_files.py: the writer side of
each format's library, fpdf2 for PDFs), each of a realistic size (a 12-section report of
~4,000 words with a table every third section, a 24-slide deck with notes, a workbook
of two 1,000-row sheets, ...), then times mixrag's loader on every file (read the bytes,
parse, cut passages with the default chunking; no encoder) and reports per format:
files/s, MB/s, pages/slides/sheets per second, words and passages per second. PDFs come
twice: prose only (pypdf alone) and with a ruled table on every third page (those pages
read again by pdfplumber), next to pdfplumber reading every page as a reference.

Fidelity, per format, against what the generator wrote: the share of paragraphs, list
items, headings and notes found in the output text, the share of table cells found, and
the share of table rows whose every cell is written next to its column name on one line
("Country: France; Capital: Paris"), the property a passage cut from a table needs.

    python bench/parse_formats.py --corpus /tmp/corpus --keep ...   # keep the files
    /tmp/md-venv/bin/python bench/parse_formats.py --markitdown --corpus /tmp/corpus \\
        --out bench/results/parse_formats-markitdown.json          # the same on markitdown

``--markitdown`` times ``MarkItDown().convert`` on an existing corpus instead, in a
Python that has markitdown (it imports nothing from mixrag), for the comparison in
docs/DESIGN.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.ingest.make_files import Doc, Section  # noqa: E402

# What each corpus file is made of: (suffix, kind of document, unit counted per second).
FORMATS = [
    (".docx", "report", "pages"),
    (".odt", "report", "pages"),
    (".epub", "book", "chapters"),
    (".pptx", "deck", "slides"),
    (".odp", "deck", "slides"),
    (".xlsx", "workbook", "rows"),
    (".ods", "workbook", "rows"),
    (".csv", "table", "rows"),
    (".pdf", "report-prose", "pages"),
    (".pdf", "report", "pages"),
]
_VOCAB_TEXT = (
    "mill river wool company founded workers fire blanket trade city market water wheel "
    "engine canal harbour copper steel wire cotton loom weaver railway station bridge council "
    "school church farm orchard harvest winter summer north south east west"
)
_VOCAB = _VOCAB_TEXT.split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_VOCAB) for _ in range(rng.randint(8, 18))]
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random, n_sentences: int = 5) -> str:
    return " ".join(_sentence(rng) for _ in range(n_sentences))


def _table(rng: random.Random, n_rows: int) -> list[list[str]]:
    header = ["Year", "Product", "Town", "Output", "Workers"]
    rows = [
        [
            str(1850 + i),
            rng.choice(_VOCAB),
            rng.choice(_VOCAB).title(),
            str(rng.randint(10, 9999)),
            str(rng.randint(3, 400)),
        ]
        for i in range(n_rows)
    ]
    return [header, *rows]


def make_doc(kind: str, seed: int) -> Doc:
    """One corpus document: a report, a deck, a book or a workbook (see the module doc)."""
    rng = random.Random(seed)
    if kind.startswith("report"):  # ~4,000 words, 12 sections
        tables = kind == "report"
        sections = [
            Section(
                f"Section {i + 1}",
                [_paragraph(rng) for _ in range(4)],
                [_sentence(rng) for _ in range(3)],
                _table(rng, 8) if tables and i % 3 == 0 else None,
            )
            for i in range(12)
        ]
    elif kind == "deck":  # 24 slides with notes, a table on every sixth
        sections = [
            Section(
                f"Slide topic {i + 1}",
                [_sentence(rng) for _ in range(5)],
                table=_table(rng, 5) if i % 6 == 5 else None,
                notes=_paragraph(rng, 2),
            )
            for i in range(24)
        ]
    elif kind == "book":  # 10 chapters of ~700 words
        sections = [
            Section(f"Chapter {i + 1}", [_paragraph(rng, 8) for _ in range(6)]) for i in range(10)
        ]
    elif kind == "workbook":  # two sheets of 1,000 rows
        sections = [Section(f"Sheet{i + 1}", table=_table(rng, 1000)) for i in range(2)]
    else:  # a CSV file's one table of 2,000 rows (its name is the file's, no heading)
        sections = [Section("", table=_table(rng, 2000))]
    return Doc(f"{kind.title()} {seed}", sections)


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def fidelity(doc: Doc, text: str) -> dict[str, float | None]:
    """How much of ``doc`` the output ``text`` keeps (see the module docstring)."""
    flat = _norm(text)
    lines = [_norm(line) for line in text.splitlines()]
    prose = [s.heading for s in doc.sections if s.heading] + [
        p
        for s in doc.sections
        for p in (*s.paragraphs, *s.bullets, *([s.notes] if s.notes else ()))
    ]
    cells = [c for s in doc.sections if s.table for row in s.table for c in row]
    rows = [(s.table[0], row) for s in doc.sections if s.table for row in s.table[1:]]

    def with_header(header: list[str], row: list[str]) -> bool:
        pairs = [_norm(f"{h}: {v}") for h, v in zip(header, row, strict=True)]
        return any(all(p in line for p in pairs) for line in lines)

    def share(hits: list[bool]) -> float | None:
        return round(sum(hits) / len(hits), 3) if hits else None

    return {
        "text_found": share([_norm(p) in flat for p in prose]),
        "cells_found": share([_norm(c) in flat for c in cells]),
        "rows_with_header": share([with_header(h, r) for h, r in rows]),
    }


def units(kind: str, unit: str, doc: Doc) -> int:
    if unit == "rows":
        return sum(len(s.table) - 1 for s in doc.sections if s.table)
    return len(doc.sections)  # a report section is a page in the PDF; about one in Word


def write_corpus(folder: Path, n_files: int) -> list[dict[str, Any]]:
    from tests.ingest.make_files import WRITERS

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for suffix, kind, unit in FORMATS:
        for i in range(n_files):
            doc = make_doc(kind, seed=i)
            path = WRITERS[suffix](folder / f"{kind}-{i}{suffix}", doc)
            files.append(
                {
                    "path": str(path),
                    "suffix": suffix,
                    "kind": kind,
                    "unit": unit,
                    "seed": i,
                    "units": units(kind, unit, doc),
                }
            )
    (folder / "corpus.json").write_text(json.dumps(files, indent=1))
    return files


def _time(fn: Any, repeat: int) -> tuple[float, Any]:
    """The median of ``repeat`` timings of ``fn()`` and its last result."""
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def mixrag_reader(path: Path) -> tuple[str, int]:
    from mixrag.ingest.chunking import ChunkConfig, chunk_document
    from mixrag.ingest.loaders import load_file

    loaded = load_file(path)
    n_passages = sum(len(chunk_document(d, ChunkConfig())) for d in loaded.documents)
    return "\n".join(d.text for d in loaded.documents), n_passages


def markitdown_reader(path: Path) -> tuple[str, int]:
    from markitdown import MarkItDown

    return MarkItDown().convert(str(path)).text_content, 0


def pdfplumber_reader(path: Path) -> tuple[str, int]:
    """Reference: pdfplumber alone on every page, tables found and extracted."""
    import pdfplumber

    with pdfplumber.open(path) as pdf:
        parts = []
        for page in pdf.pages:
            parts += [json.dumps(t.extract()) for t in page.find_tables()]
            parts.append(page.extract_text() or "")
    return "\n".join(parts), 0


def measure(files: list[dict[str, Any]], reader: Any, repeat: int, name: str) -> dict[str, Any]:
    """Per format: every file read ``repeat`` times (the median kept), after one untimed
    read of the format's first file so that imports and first-use setup are not timed."""
    by_group: dict[str, dict[str, Any]] = {}
    warm: set[str] = set()
    for f in files:
        if f["suffix"] not in warm:
            warm.add(f["suffix"])
            with contextlib.suppress(Exception):
                reader(Path(f["path"]))
        path = Path(f["path"])
        group = f"{f['suffix']} ({f['kind']})" if f["suffix"] == ".pdf" else f["suffix"]
        g = by_group.setdefault(
            group,
            {
                "files": 0,
                "bytes": 0,
                "units": 0,
                "unit": f["unit"],
                "seconds": 0.0,
                "words": 0,
                "passages": 0,
                "fidelity": [],
                "errors": [],
            },
        )
        try:
            seconds, (text, n_passages) = _time(lambda p=path: reader(p), repeat)
        except Exception as e:  # a converter failing on a file is a result, not a crash
            g["errors"].append(f"{path.name}: {type(e).__name__}: {str(e)[:160]}")
            continue
        g["files"] += 1
        g["bytes"] += path.stat().st_size
        g["units"] += f["units"]
        g["seconds"] += seconds
        g["words"] += len(text.split())
        g["passages"] += n_passages
        g["fidelity"].append(fidelity(make_doc(f["kind"], f["seed"]), text))
    out = {}
    for group, g in by_group.items():

        def rate(x: float, digits: int, g: dict[str, Any] = g) -> float | None:
            return round(x / g["seconds"], digits) if g["files"] and g["seconds"] else None

        fid = {
            k: (
                round(statistics.fmean(v), 3)
                if (v := [x[k] for x in g["fidelity"] if x[k] is not None])
                else None
            )
            for k in ("text_found", "cells_found", "rows_with_header")
        }
        out[group] = {
            "reader": name,
            "files": g["files"],
            "mb": round(g["bytes"] / 2**20, 3),
            "seconds": round(g["seconds"], 4),
            "files_per_s": rate(g["files"], 2),
            "mb_per_s": rate(g["bytes"] / 2**20, 3),
            f"{g['unit']}_per_s": rate(g["units"], 1),
            "words_per_s": rate(g["words"], 0),
            "passages_per_s": rate(g["passages"], 1) if g["passages"] else None,
            "fidelity": fid,
            "errors": g["errors"],
        }
    return out


def _machine() -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": load,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=5, help="documents per format")
    ap.add_argument("--repeat", type=int, default=3, help="timings per file (the median is kept)")
    ap.add_argument("--corpus", type=Path, help="corpus folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the corpus folder")
    ap.add_argument("--markitdown", action="store_true", help="time markitdown on --corpus")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/parse_formats.json")
    args = ap.parse_args()
    result: dict[str, Any] = {
        "machine": _machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    if args.markitdown:
        if args.corpus is None:
            ap.error("--markitdown times an existing corpus: give --corpus")
        files = json.loads((args.corpus / "corpus.json").read_text())
        result["markitdown"] = measure(files, markitdown_reader, args.repeat, "markitdown")
    else:
        folder = args.corpus or Path(tempfile.mkdtemp(prefix="parse-formats-"))
        t0 = time.perf_counter()
        files = write_corpus(folder, args.files)
        result["corpus_seconds"] = round(time.perf_counter() - t0, 1)
        result["mixrag"] = measure(files, mixrag_reader, args.repeat, "mixrag")
        pdfs = [f for f in files if f["suffix"] == ".pdf"]
        result["pdfplumber"] = measure(pdfs, pdfplumber_reader, args.repeat, "pdfplumber")
        if not args.keep and args.corpus is None:
            import shutil

            shutil.rmtree(folder)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for reader in ("mixrag", "pdfplumber", "markitdown"):
        for group, r in result.get(reader, {}).items():
            rates = {k[:-6]: v for k, v in r.items() if k.endswith("_per_s")}
            errors = f"  ERRORS {len(r['errors'])}: {r['errors'][0]}" if r["errors"] else ""
            print(f"{reader:10s} {group:22s} {rates}  fidelity {r['fidelity']}{errors}")


if __name__ == "__main__":
    main()
