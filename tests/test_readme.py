"""The README's Python example runs as printed, so that it cannot drift from the API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO, make_docs


def readme_example() -> str:
    """The first Python block under the README's "## Python" heading."""
    section = (REPO / "README.md").read_text(encoding="utf-8").split("\n## Python\n", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "no ```python block under ## Python in README.md"
    return found.group(1)


def test_the_example_is_the_common_path_in_ten_lines() -> None:
    code = readme_example()
    assert len([line for line in code.splitlines() if line.strip()]) <= 10, code
    for step in ("KnowledgeBase.open(", "create=True", ".add(", ".search(", ".ask(", "citations"):
        assert step in code, step


@pytest.mark.slow  # the example loads the bundled encoder and SmolLM2 itself
def test_the_example_runs_on_a_small_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_docs(tmp_path / "my-docs")  # the example's ./my-docs: three short documents
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    try:
        exec(compile(readme_example(), "README.md", "exec"), namespace)
    finally:
        if "kb" in namespace:
            namespace["kb"].close()  # type: ignore[attr-defined]
    printed = capsys.readouterr().out.splitlines()
    report, answer = namespace["report"], namespace["answer"]
    assert len(report.added) == 3 and report.ok  # type: ignore[attr-defined]
    hits, answer_line, cites = printed[:3], printed[3], printed[4:]
    assert [line.split()[0] for line in hits] == ["1", "2", "3"]
    assert hits[0].endswith("tesla.txt")  # the passage that answers comes first
    assert answer_line.startswith(answer.text) and "p(y|x) = " in answer_line  # type: ignore[attr-defined]
    assert len(cites) == 3 and all(re.match(r"  \[\d\] \d\.\d\d -> \d\.\d\d ", c) for c in cites)
    posteriors = [c.posterior for c in answer.citations]  # type: ignore[attr-defined]
    assert sum(posteriors) == pytest.approx(1.0, abs=1e-5)
    assert (tmp_path / "idx" / "mixrag.json").exists()
