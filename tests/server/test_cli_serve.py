"""``mixrag serve`` on the command line: its options, and mistakes as one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mixrag.cli.main import app, main

runner = CliRunner()


def test_serve_help_lists_the_options() -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--index", "--host", "--port", "--token-file", "--max-upload-mb", "--max-k"):
        assert option in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token-file", "{tmp}/missing"], "cannot read token file"),
        (["--token-file", "{tmp}/empty"], "is empty"),
        (["-k", "50"], "k must be in 1..max_k=20"),
        (["--method", "grep"], "method must be one of"),
    ],
)
def test_serve_mistakes_are_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    (tmp_path / "empty").write_text("\n")
    argv = ["mixrag", "serve", "--index", str(tmp_path / "idx")]
    argv += [a.format(tmp=tmp_path) for a in args]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mixrag: error:") and message in err and "\n" not in err
