"""A SQuAD-layout dataset's own paragraphs as the corpus: ``mixrag eval --build-index``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mixrag.errors import MixragError
from mixrag.eval.datasets import Dataset


def index_dataset(data: Dataset, folder: str | Path, progress: Any = None) -> Path:
    """Index the paragraphs of SQuAD-layout ``data`` into the index folder ``folder``.

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
    with Index.open(folder, create=True) as index:
        report = index.add([str(data.path)], progress=progress)
    if not report.ok:
        reason = report.failed[0][1] if report.failed else "unsupported file"
        raise MixragError(f"indexing {data.path} failed: {reason}")
    return Path(folder)
