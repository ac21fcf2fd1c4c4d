"""The loss curve of a run folder."""

from __future__ import annotations

from pathlib import Path

from mixrag.train.plots import plot_loss


def test_loss_png_with_the_median_and_the_dev_figures(tmp_path: Path) -> None:
    history = [
        {"step": s, "loss": 5.0 / s, "losses": [1.0, 9.0 / s], "dev": {"em": 10.0 + s}}
        for s in range(1, 13)
    ]
    history[3]["dev"] = {"answer@5": 0.5}  # no gold passages: answer@5 instead of R@5
    out = tmp_path / "loss.png"
    plot_loss(history, out, dev_start={"em": 8.0, "answer@5": 0.4})
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 1000
    plot_loss([{"step": 1, "loss": 2.0}], out)  # an old history: no per-question losses
    assert out.stat().st_size > 1000
