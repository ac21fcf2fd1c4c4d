"""Question sets for evaluation: each question with its reference answers and gold document.

SQuAD (v1.1 layout, optionally gzipped): the gold document of a question is the
paragraph it was written about, identified exactly as the SQuAD loader keys it
(``article:paragraph``), so a passage cut from that paragraph is a gold passage.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixrag.errors import MixragError


@dataclass(frozen=True)
class Question:
    """One evaluation item: the question x, reference answers, and where the answer lives."""

    id: str
    question: str
    answers: tuple[str, ...]
    gold_doc_keys: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


def _read_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        return json.loads(raw.decode("utf-8-sig"))
    except FileNotFoundError:
        raise MixragError(f"no such dataset: {path}") from None
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MixragError(f"{path}: not a readable JSON dataset ({e})") from None


def load_squad(path: str | Path) -> list[Question]:
    """Every question of a SQuAD v1.1 file; gold key ``article:paragraph`` as the loader makes."""
    p = Path(path)
    obj = _read_json(p)
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise MixragError(f"{p}: not SQuAD layout (expected {{'data': [articles]}})")
    out = []
    for ai, article in enumerate(obj["data"]):
        for pi, para in enumerate(article.get("paragraphs", [])):
            for qa in para.get("qas", []):
                answers = tuple(dict.fromkeys(a["text"] for a in qa.get("answers", [])))
                out.append(
                    Question(
                        id=str(qa["id"]),
                        question=qa["question"],
                        answers=answers,
                        gold_doc_keys=(f"{ai}:{pi}",),
                        metadata={"title": article.get("title", "")},
                    )
                )
    return out


def sample(questions: Sequence[Question], n: int | None, seed: int = 0) -> list[Question]:
    """A seeded random subset of ``n`` questions (all, in order, when n is None or too big)."""
    if n is None or n >= len(questions):
        return list(questions)
    idx = sorted(random.Random(seed).sample(range(len(questions)), n))
    return [questions[i] for i in idx]
