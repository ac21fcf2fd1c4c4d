"""Helpers shared by tests of several packages (test files never import each other)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_SQUAD = REPO / "data" / "demo" / "squad-dev-demo.json"
FULL_SQUAD = REPO / "data" / "squad" / "squaddev_v1.1.json.gz"

DOCS = {
    "tesla.txt": "Nikola Tesla was a Serbian-American inventor. He designed the alternating "
    "current induction motor and the Tesla coil, a resonant transformer.",
    "mill.md": "# Riverside Mill\n\nThe Riverside Mill was founded in 1901 by Ada Lovelace "
    "Smith. It produced wool blankets until a fire closed it in 1975.",
    "rainforest.html": "<html><head><title>Amazon</title><script>x()</script></head><body>"
    "<p>The Amazon rainforest covers much of the Amazon basin of South America.</p></body></html>",
}


def make_docs(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (root / name).write_text(text, encoding="utf-8")
    return root
