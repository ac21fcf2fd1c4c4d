"""Question sets for evaluation: each question with its reference answers and gold passages.

Three formats, each readable plain or gzipped (``.gz``), picked from the file name
by :func:`load_dataset` unless given explicitly:

- ``squad`` (``.json``): SQuAD v1.1 layout. The gold document of a question is the
  paragraph it was written about, keyed exactly as the SQuAD ingest loader keys it
  (``article:paragraph``, 0-based), so a passage cut from that paragraph is gold.
- ``jsonl`` (``.jsonl``): one JSON object a line, ``{"question": str, "answers": [str],
  "id"?: str, "gold_passage_ids"?: [str], "gold_doc"?: str | [str]}`` (a single
  ``"answer": str`` is accepted in place of ``answers``).
- ``nq-tsv`` (``.tsv``, ``.txt``): NQ-open style ``question<TAB>answers``, the answers
  a Python-literal or JSON list of strings, e.g. ``['Bern', 'Berne']``.

A malformed record is skipped with a :class:`Skipped` reason (and its 1-based line
where the format has lines) instead of failing the whole file; a file with no usable
question at all is a :class:`~mixrag.errors.MixragError`.
"""

from __future__ import annotations

import ast
import gzip
import json
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixrag.errors import MixragError

logger = logging.getLogger(__name__)

FORMATS = ("squad", "jsonl", "nq-tsv")
_SUFFIX_FORMATS = {".json": "squad", ".jsonl": "jsonl", ".tsv": "nq-tsv", ".txt": "nq-tsv"}
_REASONS_IN_ERROR = 3  # skipped reasons quoted when a whole file is unusable


@dataclass(frozen=True)
class Question:
    """One evaluation item: the question x, reference answers, and where the answer lives.

    A retrieved passage is gold when its doc key is in ``gold_doc_keys`` or its id is in
    ``gold_passage_ids``.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    gold_doc_keys: tuple[str, ...] = ()
    gold_passage_ids: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """A record left out of a dataset: its 1-based line (None where the format has none)."""

    line: int | None
    reason: str


@dataclass(frozen=True)
class Dataset:
    """The usable questions of one file and the records skipped from it."""

    path: str
    format: str
    questions: list[Question]
    skipped: list[Skipped]

    def to_dict(self) -> dict[str, Any]:
        """The results.json ``dataset`` block less ``evaluated``; ``total`` = usable questions."""
        return {
            "path": self.path,
            "format": self.format,
            "total": len(self.questions),
            "skipped": [{"line": s.line, "reason": s.reason} for s in self.skipped],
        }


def _read_text(path: Path) -> str:
    """The file decoded as UTF-8 (BOM dropped), gunzipped first when named ``*.gz``."""
    try:
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        return raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise MixragError(f"no such dataset: {path}") from None
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise MixragError(f"{path}: not a readable dataset ({e})") from None


def _read_json(path: Path) -> Any:
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise MixragError(f"{path}: not a readable JSON dataset ({e})") from None


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) of every non-blank line.

    Split on ``\\n`` only: ``str.splitlines`` would also break on U+2028 and friends,
    which may sit unescaped inside a JSON string.
    """
    for n, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield n, line


def _str_list(value: Any, name: str) -> tuple[str, ...]:
    """A non-empty list of non-empty strings as a de-duplicated tuple, else ValueError."""
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of strings, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} is empty")
    for v in value:
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"{name} must hold non-empty strings, got {v!r}")
    return tuple(dict.fromkeys(value))


# --- SQuAD -------------------------------------------------------------------------------


def _squad_questions(obj: Any, path: Path) -> tuple[list[Question], list[Skipped]]:
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise MixragError(f"{path}: not SQuAD layout (expected {{'data': [articles]}})")
    out: list[Question] = []
    skipped: list[Skipped] = []
    for ai, article in enumerate(obj["data"]):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs", []), list):
            skipped.append(Skipped(None, f"article {ai}: not an object with a paragraphs list"))
            continue
        title = article.get("title", "")
        for pi, para in enumerate(article.get("paragraphs", [])):
            if not isinstance(para, dict) or not isinstance(para.get("qas", []), list):
                reason = f"article {ai} paragraph {pi}: not an object with a qas list"
                skipped.append(Skipped(None, reason))
                continue
            for qi, qa in enumerate(para.get("qas", [])):
                where = f"article {ai} paragraph {pi} question {qi}"
                try:
                    q = _squad_question(qa, f"{ai}:{pi}", title)
                except ValueError as e:
                    qid = qa.get("id") if isinstance(qa, dict) else None
                    label = f"question {qid}" if qid is not None else where
                    skipped.append(Skipped(None, f"{label}: {e}"))
                    continue
                out.append(q)
    return out, skipped


def _squad_question(qa: Any, key: str, title: Any) -> Question:
    if not isinstance(qa, dict):
        raise ValueError(f"not an object ({type(qa).__name__})")
    if not isinstance(qa.get("id"), str | int) or isinstance(qa.get("id"), bool):
        raise ValueError("missing or non-string id")
    question = qa.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("missing or empty question")
    answers = qa.get("answers", [])
    if not isinstance(answers, list) or not all(
        isinstance(a, dict) and isinstance(a.get("text"), str) for a in answers
    ):
        raise ValueError("answers must be a list of {'text': str} objects")
    texts = tuple(dict.fromkeys(a["text"] for a in answers if a["text"].strip()))
    if not texts:
        raise ValueError("no answers")
    return Question(
        id=str(qa["id"]),
        question=question,
        answers=texts,
        gold_doc_keys=(key,),
        metadata={"title": title if isinstance(title, str) else ""},
    )


def load_squad(path: str | Path) -> list[Question]:
    """Every answerable question of a SQuAD v1.1 file; gold key ``article:paragraph``.

    Malformed or unanswerable questions are left out (logged); use :func:`load_dataset`
    to see why.
    """
    p = Path(path)
    questions, skipped = _squad_questions(_read_json(p), p)
    if skipped:
        logger.warning("%s: skipped %d malformed questions", p, len(skipped))
    return questions


# --- JSONL -------------------------------------------------------------------------------


def _jsonl_question(n: int, line: str) -> Question:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON ({e})") from None
    if not isinstance(rec, dict):
        raise ValueError(f"not a JSON object ({type(rec).__name__})")
    question = rec.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("missing or empty 'question'")
    if "answers" in rec:
        answers = _str_list(rec["answers"], "'answers'")
    elif "answer" in rec:
        one = rec["answer"]
        answers = _str_list(one if isinstance(one, list) else [one], "'answer'")
    else:
        raise ValueError("missing 'answers'")
    qid = rec.get("id", f"line{n}")
    if isinstance(qid, bool) or not isinstance(qid, str | int) or not str(qid).strip():
        raise ValueError(f"'id' must be a non-empty string, got {qid!r}")
    passages: tuple[str, ...] = ()
    if "gold_passage_ids" in rec:
        passages = _str_list(rec["gold_passage_ids"], "'gold_passage_ids'")
    docs: tuple[str, ...] = ()
    if "gold_doc" in rec:
        gold = rec["gold_doc"]
        docs = _str_list(gold if isinstance(gold, list) else [gold], "'gold_doc'")
    return Question(
        id=str(qid),
        question=question.strip(),
        answers=answers,
        gold_doc_keys=docs,
        gold_passage_ids=passages,
        metadata={"line": n},
    )


# --- NQ-open TSV -------------------------------------------------------------------------


def _parse_list(text: str) -> Any:
    """A JSON or Python-literal value; ``ast.literal_eval`` evaluates literals only."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"answers are not a JSON or Python list: {text[:60]!r}") from None


def _tsv_question(n: int, line: str) -> Question:
    if "\t" not in line:
        raise ValueError("no tab between question and answers")
    question, answers = line.split("\t", 1)
    if not question.strip():
        raise ValueError("empty question")
    if not answers.strip():
        raise ValueError("empty answers")
    return Question(
        id=f"line{n}",
        question=question.strip(),
        answers=_str_list(_parse_list(answers.strip()), "answers"),
        metadata={"line": n},
    )


# --- entry point -------------------------------------------------------------------------


def detect_format(path: str | Path) -> str:
    """The format named by a file's extension (``.gz`` stripped first), else MixragError."""
    name = Path(path).name.lower()
    name = name.removesuffix(".gz")
    fmt = _SUFFIX_FORMATS.get(Path(name).suffix)
    if fmt is None:
        accepted = ", ".join(f"{s} ({f})" for s, f in _SUFFIX_FORMATS.items())
        raise MixragError(
            f"{path}: cannot tell the dataset format from the name; use one of {accepted}, "
            f"optionally .gz, or name the format ({', '.join(FORMATS)})"
        )
    return fmt


def load_dataset(path: str | Path, format: str | None = None) -> Dataset:
    """Load every usable question of a dataset file, with the records skipped and why.

    ``format`` is one of :data:`FORMATS`; left out, it comes from the file name
    (:func:`detect_format`). Raises MixragError for a missing or unreadable file, an
    unknown format, a file that is not SQuAD layout (squad), or no usable question.
    """
    p = Path(path)
    if format is None:
        format = detect_format(p)
    elif format not in FORMATS:
        raise MixragError(f"unknown dataset format {format!r}; accepted: {', '.join(FORMATS)}")

    questions: list[Question] = []
    skipped: list[Skipped] = []
    if format == "squad":
        questions, skipped = _squad_questions(_read_json(p), p)
    else:
        parse = _jsonl_question if format == "jsonl" else _tsv_question
        for n, line in _lines(_read_text(p)):
            try:
                questions.append(parse(n, line))
            except ValueError as e:
                skipped.append(Skipped(n, str(e)))

    # Questions are keyed by id in results.json, so a repeated id would silently merge two.
    seen: set[str] = set()
    unique: list[Question] = []
    for q in questions:
        if q.id in seen:
            skipped.append(Skipped(q.metadata.get("line"), f"duplicate id {q.id!r}"))
            continue
        seen.add(q.id)
        unique.append(q)
    skipped.sort(key=lambda s: (s.line is None, s.line or 0))

    if not unique:
        first = "; ".join(
            (f"line {s.line}: " if s.line is not None else "") + s.reason
            for s in skipped[:_REASONS_IN_ERROR]
        )
        detail = f" ({len(skipped)} records skipped; first: {first})" if skipped else ""
        raise MixragError(f"{p}: no usable questions in this {format} file{detail}")
    if skipped:
        logger.warning("%s: skipped %d of %d records", p, len(skipped), len(skipped) + len(unique))
    return Dataset(path=str(p), format=format, questions=unique, skipped=skipped)


def sample(questions: Sequence[Question], n: int | None, seed: int = 0) -> list[Question]:
    """A seeded random subset of ``n`` questions (all, in order, when n is None or too big)."""
    if n is None or n >= len(questions):
        return list(questions)
    idx = sorted(random.Random(seed).sample(range(len(questions)), n))
    return [questions[i] for i in idx]
