"""A SQuAD-layout dataset's own paragraphs as the corpus: ``mixrag eval --build-index``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixrag.errors import MixragError
from mixrag.eval.datasets import Dataset


def index_dataset(
    data: Dataset,
    folder: str | Path,
    progress: Any = None,
    held_out: frozenset[str] = frozenset(),
    encoder: Any = None,
) -> Path:
    """Index the paragraphs of SQuAD-layout ``data`` into the index folder ``folder``.

    ``held_out``: articles (0-based positions) to leave out, for unanswerable questions
    (:mod:`mixrag.eval.unanswerable`): a copy of the file without their paragraphs is
    written into the folder and indexed instead, then the index is checked to hold no
    passage of theirs. ``encoder``: an already loaded encoder to share.

    The folder is created if needed; files it already holds are skipped by their hash,
    so a second call costs only the check. ``progress`` is an ``Index.add`` progress
    callback. Raises :class:`MixragError` for another layout (only SQuAD files carry
    their paragraphs) or when indexing fails. Returns ``folder``.
    """
    from mixrag.index.folder import Index

    if data.format != "squad":
        raise MixragError(
            f"--build-index needs a SQuAD-layout dataset (its paragraphs are the corpus); "
            f"{data.path} is {data.format}"
        )
    with Index.open(folder, create=True, encoder=encoder) as index:
        source = str(data.path)
        if held_out:
            from mixrag.eval.unanswerable import check_no_leak, write_corpus

            source = str(write_corpus(data.path, held_out, folder))
        report = index.add([source], progress=progress)
        if report.ok and held_out:
            check_no_leak(index, source, held_out)
    if not report.ok:
        reason = report.failed[0][1] if report.failed else "unsupported file"
        raise MixragError(f"indexing {data.path} failed: {reason}")
    return Path(folder)
