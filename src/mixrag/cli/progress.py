"""A rich progress bar for ingest: files done, passages encoded, passages per second."""

from __future__ import annotations

import sys
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from mixrag.ingest.pipeline import IngestProgress


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        encoded = task.fields.get("encoded", 0)
        elapsed = task.elapsed or 0.0
        rate = encoded / elapsed if elapsed > 0 else 0.0
        return Text(f"{encoded} passages encoded, {rate:.0f}/s", style="cyan")


class IngestBar:
    """Context manager; call it with each :class:`IngestProgress` update."""

    def __init__(self, enabled: bool | None = None) -> None:
        console = Console(stderr=True)
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.progress = Progress(
            TextColumn("[bold]indexing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files"),
            _Rate(),
            TimeElapsedColumn(),
            console=console,
            disable=not self.enabled,
            transient=False,
        )
        self.task = self.progress.add_task("indexing", total=None, encoded=0)

    def __enter__(self) -> IngestBar:
        self.progress.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def __call__(self, state: IngestProgress) -> None:
        self.progress.update(
            self.task,
            total=state.files_total,
            completed=state.files_done,
            encoded=state.passages_encoded,
        )
