"""Unanswerable questions: index a SQuAD corpus without the articles of some questions.

``mixrag eval --unanswerable 0.33 --build-index DIR`` holds out whole articles (SQuAD
titles), chosen by seed among the articles of the evaluated questions, until at least
that share of the questions lose their article; the index is built from a copy of the
dataset whose held-out articles have no paragraphs, so no passage of theirs can be
retrieved and those questions have no answer in the index. Articles keep their
positions in the copy, so the gold keys ``article:paragraph`` of the other questions
still name their passages.

A question is *answerable* iff its article is not held out. :func:`check_no_leak`
verifies the built index: it holds the copy alone and no passage of a held-out article.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixrag.errors import MixragError
from mixrag.eval.datasets import Question, _read_json

if TYPE_CHECKING:
    from mixrag.index.folder import Index


def article_of(question: Question) -> str:
    """The SQuAD article (its 0-based position in the file) ``question`` was written
    about, from its gold key ``article:paragraph``."""
    for key in question.gold_doc_keys:
        article, sep, _paragraph = key.partition(":")
        if sep and article.isdigit():
            return article
    raise MixragError(
        f"question {question.id!r} has no SQuAD gold key 'article:paragraph' "
        f"(got {list(question.gold_doc_keys)}); --unanswerable needs a SQuAD dataset"
    )


def held_out_articles(questions: Sequence[Question], share: float, seed: int) -> frozenset[str]:
    """Articles to leave out of the index so that at least ``share`` of ``questions``
    (rounded to the nearest question) become unanswerable; seeded, and independent of
    the questions' order. ``share`` 0 holds out nothing."""
    if not 0.0 <= share < 1.0:
        raise MixragError(f"the unanswerable share must be in [0, 1), got {share!r}")
    want = round(share * len(questions))
    if want == 0:
        return frozenset()
    count: dict[str, int] = {}
    for q in questions:
        a = article_of(q)
        count[a] = count.get(a, 0) + 1
    articles = sorted(count, key=int)
    random.Random(seed).shuffle(articles)
    held: list[str] = []
    n = 0
    for a in articles:
        if n >= want:
            break
        if len(held) + 1 == len(articles):
            break  # keep one article: a corpus with nothing answerable measures nothing
        held.append(a)
        n += count[a]
    return frozenset(held)


def is_answerable(question: Question, held_out: Iterable[str]) -> bool:
    return article_of(question) not in set(held_out)


def corpus_without(squad: Any, held_out: Iterable[str]) -> dict[str, Any]:
    """A copy of SQuAD-layout ``squad`` whose held-out articles (by position) have no
    paragraphs; the other articles keep their positions."""
    held = set(held_out)
    if not isinstance(squad, dict) or not isinstance(squad.get("data"), list):
        raise MixragError("not SQuAD layout (expected {'data': [articles]})")
    data = [
        {"title": a.get("title", ""), "paragraphs": []} if str(i) in held else a
        for i, a in enumerate(squad["data"])
    ]
    return {**squad, "data": data}


def corpus_name(held_out: Iterable[str]) -> str:
    """The file name of the copy: it names the held-out set, so a folder indexed with
    another split holds another file (and :func:`check_no_leak` refuses it)."""
    key = ",".join(sorted(held_out, key=int))
    return f"corpus-without-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"


def write_corpus(dataset: str | Path, held_out: Iterable[str], folder: str | Path) -> Path:
    """Write :func:`corpus_without` of the SQuAD file ``dataset`` into ``folder``."""
    held = frozenset(held_out)
    out = Path(folder) / corpus_name(held)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(corpus_without(_read_json(Path(dataset)), held)), encoding="utf-8")
    return out


def check_no_leak(index: Index, corpus: str | Path, held_out: Iterable[str]) -> None:
    """Raise :class:`MixragError` unless ``index`` holds the file ``corpus`` alone and no
    passage of a held-out article."""
    held = set(held_out)
    files = [f.path for f in index.store.files()]
    want = str(Path(corpus).resolve())
    others = [f for f in files if str(Path(f).resolve()) != want]
    if others:
        raise MixragError(
            f"{index.location} also indexes {', '.join(others[:3])}: the held-out articles "
            "could leak; give --build-index a fresh folder"
        )
    for batch in index.store.iter_passages():
        for p in batch:
            if str(p.metadata.get("article")) in held:
                raise MixragError(
                    f"passage {p.id} of held-out article {p.metadata.get('article')} is in "
                    f"{index.location}"
                )
