"""JSON records and SQuAD: a file that holds many documents.

.json: the SQuAD layout (each paragraph a document titled by its article), a list of
records or one record; .jsonl: one record per line. A record is an object with a
``text`` field and optional ``title``, ``id`` and any other fields, kept as metadata.
A bad record or line is a warning (skipped, the others kept); a file with none is an
error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mixrag.errors import LoadError
from mixrag.ingest.documents import Document, Segment
from mixrag.ingest.formats.base import Parser, decode


def _record_to_document(rec: Any, default_key: str, where: str) -> Document:
    if not isinstance(rec, dict):
        raise ValueError(
            f"{where}: expected an object with a 'text' field, got {type(rec).__name__}"
        )
    text = rec.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: missing or empty 'text' field")
    title = rec.get("title", "")
    if not isinstance(title, str):
        raise ValueError(f"{where}: 'title' must be a string, got {type(title).__name__}")
    key = rec.get("id", default_key)
    if not isinstance(key, str | int):
        raise ValueError(f"{where}: 'id' must be a string or integer, got {type(key).__name__}")
    meta = {k: v for k, v in rec.items() if k not in ("text", "title", "id")}
    return Document(key=str(key), title=title, segments=(Segment(text),), metadata=meta)


def _is_squad(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("data"), list)
        and all(isinstance(a, dict) and "paragraphs" in a for a in obj["data"])
    )


def parse_squad(obj: dict[str, Any], path: Path) -> list[Document]:
    """SQuAD layout: each paragraph a document titled by its article; key ``article:paragraph``."""
    docs = []
    for ai, article in enumerate(obj["data"]):
        title = str(article.get("title", "")).replace("_", " ")
        for pi, para in enumerate(article.get("paragraphs", [])):
            context = para.get("context") if isinstance(para, dict) else None
            if not isinstance(context, str) or not context.strip():
                raise LoadError(str(path), f"article {ai} paragraph {pi}: missing 'context'")
            docs.append(
                Document(
                    key=f"{ai}:{pi}",
                    title=title,
                    segments=(Segment(context),),
                    metadata={"article": ai, "paragraph": pi},
                )
            )
    if not docs:
        raise LoadError(str(path), "SQuAD file has no paragraphs")
    return docs


def _dedupe_keys(docs: list[Document], path: Path, warnings: list[str]) -> list[Document]:
    seen: set[str] = set()
    out = []
    for d in docs:
        if d.key in seen:
            warnings.append(f"{path}: duplicate id {d.key!r} skipped")
            continue
        seen.add(d.key)
        out.append(d)
    return out


def parse_json(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    text = decode(data, path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}"
        raise LoadError(str(path), f"malformed JSON at {where}: {e.msg}") from None
    if _is_squad(obj):
        return parse_squad(obj, path), []
    records = obj if isinstance(obj, list) else [obj]
    warnings: list[str] = []
    docs = []
    for i, rec in enumerate(records):
        try:
            docs.append(_record_to_document(rec, str(i), f"record {i}"))
        except ValueError as e:
            warnings.append(f"{path}: {e}")
    if not docs:
        detail = f" ({warnings[0].split(': ', 1)[1]})" if warnings else ""
        raise LoadError(
            str(path),
            "JSON is neither SQuAD ({'data': [...]}) nor records with a 'text' field" + detail,
        )
    return _dedupe_keys(docs, path, warnings), warnings


def parse_jsonl(data: bytes, path: Path) -> tuple[list[Document], list[str]]:
    text = decode(data, path)
    warnings: list[str] = []
    docs = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            docs.append(_record_to_document(rec, str(lineno), f"line {lineno}"))
        except json.JSONDecodeError as e:
            warnings.append(f"{path}: line {lineno}: malformed JSON ({e.msg}), skipped")
        except ValueError as e:
            warnings.append(f"{path}: {e}, skipped")
    if not docs:
        raise LoadError(
            str(path), "no valid records" + (f"; first: {warnings[0]}" if warnings else "")
        )
    return _dedupe_keys(docs, path, warnings), warnings


PARSERS: dict[str, Parser] = {".json": parse_json, ".jsonl": parse_jsonl}
