"""The MCP server's parts that need no model: the token guard, stdout kept for the protocol,
the readable text of an answer, which tools a folder allows, and the command's options."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send
from typer.testing import CliRunner

from mixrag.answer import Alternative, Answer, Citation
from mixrag.cli.main import app, main
from mixrag.server.mcp.http import BearerGuard
from mixrag.server.mcp.text import answer_text
from mixrag.server.mcp.tools import writable
from mixrag.types import Hit, Passage

runner = CliRunner()


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("through")(scope, receive, send)


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        ("Basic s3cret", 401),
        ("Bearer s3cret-but-longer", 401),
        ("Bearer s3cret", 200),
        ("bearer s3cret", 200),  # the scheme is case-insensitive (RFC 9110)
    ],
)
def test_the_guard_lets_through_only_the_token(header: str | None, status: int) -> None:
    client = TestClient(BearerGuard(hello, "s3cret"))
    r = client.post("/mcp", headers={"Authorization": header} if header else {})
    assert r.status_code == status
    if status == 401:
        assert r.json() == {
            "error": "unauthorized",
            "detail": "send 'Authorization: Bearer <token>'",
        }
        assert r.headers["www-authenticate"] == "Bearer"
    else:
        assert r.text == "through"


def test_stdout_is_kept_for_the_protocol_while_models_load(tmp_path: Path) -> None:
    """Writes to stdout inside the guard, from Python and to fd 1 (as C code would),
    land on stderr; stdout afterwards is the protocol's again."""
    script = textwrap.dedent(
        """
        import os, sys
        from mixrag.server.mcp.stdio import stdout_to_stderr
        with stdout_to_stderr():
            print("from python")
            os.write(1, b"from fd 1\\n")
        print("protocol")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == "protocol\n"
    assert "from python" in done.stderr and "from fd 1" in done.stderr


def _citation(rank: int, prior: float, posterior: float | None) -> Citation:
    passage = Passage(f"p{rank}", f"d{rank}", f"Title {rank}", f"text {rank}", 0, f"f{rank}.md")
    hit = Hit(passage, score=0.5, prior=prior, rank=rank, rank_score=0.5)
    return Citation(hit, prior, posterior, None if posterior is None else -1.0)


def test_the_answer_cites_the_passage_with_the_highest_posterior() -> None:
    cites = (_citation(1, 0.6, 0.1), _citation(2, 0.3, 0.85), _citation(3, 0.1, 0.05))
    answer = Answer("q?", "rag-sequence", "1901", -0.5, (1, 2), cites)
    assert [c.hit.rank for c in answer.cited()] == [2]
    text = answer_text(answer)
    assert text.startswith("1901 [2]\n")
    # passages by posterior: rank 2, then 1, then 3
    order = [line.split("]")[0] for line in text.splitlines() if line.startswith("[")]
    assert order == ["[2", "[1", "[3"]
    assert "under rag-sequence with K = 3" in text


def test_the_other_answers_are_listed_only_when_asked_for() -> None:
    cites = (_citation(1, 0.6, 0.9), _citation(2, 0.4, 0.1))
    answer = Answer("q?", "rag-sequence", "1901", -0.5, (1,), cites)
    assert "Other answers" not in answer_text(answer)
    others = (Alternative("1902", math.log(0.25)), Alternative("the mill", math.log(0.05)))
    text = answer_text(replace(answer, alternatives=others))
    assert "Other answers, by p(y|x): '1902' (p = 0.25); 'the mill' (p = 0.05)." in text
    # after the answer's own log p(y|x), before the passages
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Other answers"))
    assert lines[at - 1].startswith("log p(y|x) = -0.500") and lines[at + 1].startswith("Passages")


def test_an_answer_without_posteriors_cites_nothing() -> None:
    cites = (_citation(1, 0.7, None), _citation(2, 0.3, None))
    answer = Answer("q?", "concat", "blue", -1.0, (1,), cites)
    assert answer.cited() == ()
    assert answer_text(answer).startswith("blue\n")
    assert "posterior unknown, prior 0.700" in answer_text(answer)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_folder_allows_no_writing_tools(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    folder.mkdir()
    assert writable(folder) and writable(folder / "not" / "yet")
    folder.chmod(0o500)
    try:
        assert not writable(folder) and not writable(folder / "uploads")
    finally:
        folder.chmod(0o700)


def test_mcp_help_lists_the_options() -> None:
    result = runner.invoke(app, ["mcp", "--help"])
    assert result.exit_code == 0
    for option in ("--index", "--read-only", "--model", "--max-k", "--max-upload-mb"):
        assert option in result.output
    serve = runner.invoke(app, ["serve", "--help"])
    assert "--no-mcp" in serve.output and "--mcp-read-only" in serve.output


def test_read_only_needs_an_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["mixrag", "mcp", "--index", str(tmp_path / "none"), "--read-only"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("mixrag: error: no index at") and "\n" not in err
    assert not (tmp_path / "none").exists()
