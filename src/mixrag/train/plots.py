"""The training run's loss curve (``loss.png`` in the run folder).

One figure: the loss per optimiser step, its rolling mean, and the rolling median over
the questions (a step's mean swings with the one or two questions whose answer is in
none of the K passages; the median does not), with the dev figures on a second axis.
matplotlib's Agg canvas, no pyplot state.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mixrag.atomic import atomic_path


def plot_loss(
    history: Sequence[dict[str, Any]], path: Path, dev_start: dict[str, float] | None = None
) -> None:
    """The training loss per step (raw, its rolling mean, and the rolling median over the
    questions, which the few answers found in no passage do not dominate); dev EM and
    recall@5 where measured, from ``dev_start`` (the untrained models' evaluation) at
    step 0 when given."""

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = [h["step"] for h in history]
    losses = [h["loss"] for h in history]
    fig = Figure(figsize=(9, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(steps, losses, color="#9ecae1", linewidth=1, label="loss (per step)")
    window = max(5, len(losses) // 20) if len(losses) >= 10 else 1
    if window > 1:
        smooth = [
            sum(losses[max(0, i - window + 1) : i + 1])
            / len(losses[max(0, i - window + 1) : i + 1])
            for i in range(len(losses))
        ]
        ax.plot(steps, smooth, color="#08519c", linewidth=2, label=f"loss ({window}-step mean)")
    if all("losses" in h for h in history):  # histories from before 2026-12-03 lack them
        medians = [
            statistics.median(
                x for h in history[max(0, i - window + 1) : i + 1] for x in h["losses"]
            )
            for i in range(len(history))
        ]
        ax.plot(
            steps,
            medians,
            color="#6a51a3",
            linewidth=2,
            linestyle="--",
            label=f"median over the questions of {window} step{'s' if window > 1 else ''}",
        )
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("-log p_RAG(y|x)")
    ax.grid(alpha=0.3)
    dev = [(0, dev_start)] if dev_start else []
    dev += [(h["step"], h["dev"]) for h in history if h.get("dev")]
    handles, labels = ax.get_legend_handles_labels()
    if dev:
        ax2 = ax.twinx()
        gold = any(d.get("recall@5") is not None for _s, d in dev)
        top5 = ("recall@5", "dev R@5") if gold else ("answer@5", "dev answer@5")
        for key, label, color in (("em", "dev EM", "#d94801"), (*top5, "#238b45")):
            points = [
                (s, 100 * d[key] if key != "em" else d[key])
                for s, d in dev
                if d.get(key) is not None
            ]
            if points:
                ax2.plot(
                    [s for s, _ in points], [v for _, v in points], "o-", color=color, label=label
                )
        ax2.set_ylabel(f"dev EM / {top5[0]} (%)")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper right")
    ax.set_title("Joint RAG training: negative marginal log-likelihood")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
