"""Rich progress bars: ingest (files, passages/s) and evaluation (questions/s, running EM)."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

if TYPE_CHECKING:  # annotations only: `mixrag index` need not import torch for these
    from mixrag.eval.runner import EvalProgress
    from mixrag.ingest.pipeline import IngestProgress
    from mixrag.train.trainer import TrainProgress


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        encoded = task.fields.get("encoded", 0)
        elapsed = task.elapsed or 0.0
        rate = encoded / elapsed if elapsed > 0 else 0.0
        return Text(f"{encoded} passages encoded, {rate:.0f}/s", style="cyan")


class _Bar:
    """A rich progress display on stderr, used as a context manager (shown on a TTY)."""

    def __init__(self, enabled: bool | None, *columns: ProgressColumn | str) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.progress = Progress(
            *columns, console=Console(stderr=True), disable=not self.enabled, transient=False
        )

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()


class WarmBar(_Bar):
    """Context manager; call it with (passages done, passages in the index)."""

    def __init__(self, enabled: bool | None = None) -> None:
        super().__init__(
            enabled,
            TextColumn("warming passage KV"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        self._task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if self._task is None:
            self._task = self.progress.add_task("warm", total=total)
        self.progress.update(self._task, completed=done)


class IngestBar(_Bar):
    """Context manager; call it with each :class:`IngestProgress` update."""

    def __init__(self, enabled: bool | None = None) -> None:
        super().__init__(
            enabled,
            TextColumn("[bold]indexing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files"),
            _Rate(),
            TimeElapsedColumn(),
        )
        self.task = self.progress.add_task("indexing", total=None, encoded=0)

    def __call__(self, state: IngestProgress) -> None:
        self.progress.update(
            self.task,
            total=state.files_total,
            completed=state.files_done,
            encoded=state.passages_encoded,
        )


_SHORT = {"closed-book": "cb", "concat": "cat", "rag-sequence": "seq", "rag-token": "tok"}


class _QuestionRate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} q/s" if speed else "– q/s", style="cyan")


class EvalBar(_Bar):
    """Context manager; call it with each :class:`EvalProgress` update.

    Shows the phase, (run, question) pairs done, questions per second and the running
    exact match of every answer run.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        super().__init__(
            enabled,
            TextColumn("[bold]{task.fields[phase]}"),
            BarColumn(),
            MofNCompleteColumn(),
            _QuestionRate(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[em]}"),
        )
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, state: EvalProgress) -> None:
        em = "  ".join(
            f"{_SHORT.get(key.split('@')[0], key)}@{key.split('@')[1]} EM {v:.1f}"
            for key, v in state.em.items()
        )
        if state.phase not in self.tasks:
            self.tasks[state.phase] = self.progress.add_task(
                state.phase, total=state.total, phase=state.phase, em=""
            )
        self.progress.update(
            self.tasks[state.phase], total=state.total, completed=state.done, em=em
        )


class TrainBar(_Bar):
    """Context manager; call it with each :class:`TrainProgress` (one per optimiser step)."""

    def __init__(self, enabled: bool | None = None) -> None:
        super().__init__(
            enabled,
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
        )
        self.task = self.progress.add_task("training", total=None, status="")
        self.dev = ""

    def __call__(self, state: TrainProgress) -> None:
        if state.dev:
            figures = dev_figures(state.dev)
            self.dev = f"  dev {figures}" if figures else ""
            if not self.enabled:
                print(f"step {state.step}:{self.dev}", file=sys.stderr)
        eta = f"ETA {state.eta_s / 60:.0f} min" if state.eta_s is not None else ""
        status = f"loss {state.loss:.3f}  {state.examples_per_s:.2f} ex/s  {eta}{self.dev}"
        self.progress.update(
            self.task, total=state.total_steps, completed=state.step, status=status
        )


def dev_figures(dev: dict[str, float]) -> str:
    """'EM 40.0 R@5 0.826' from what a dev evaluation measured (answer@5 without gold)."""
    parts = [f"EM {dev['em']:.1f}"] if dev.get("em") is not None else []
    for key, label in (("recall@5", "R@5"), ("answer@5", "A@5")):
        if dev.get(key) is not None:
            parts.append(f"{label} {dev[key]:.3f}")
            break
    return " ".join(parts)
