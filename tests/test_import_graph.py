"""The package's import graph has no cycles (scripts/import_cycles.py: every import counts)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import REPO, load_script


def _tool():  # type: ignore[no-untyped-def]
    return load_script(REPO / "scripts" / "import_cycles.py")


def test_src_mixrag_has_no_import_cycles() -> None:
    tool = _tool()
    assert tool.cycles(tool.import_graph(REPO / "src" / "mixrag")) == []


def test_the_tool_finds_a_cycle_through_a_package_init_and_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub.a import A\n")
    (pkg / "sub" / "a.py").write_text("A = 1\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub.a import A\n"
    )
    (pkg / "sub" / "c.py").write_text("def f():\n    from pkg import b\n")
    tool = _tool()
    assert tool.cycles(tool.import_graph(pkg)) == []
    (pkg / "sub" / "a.py").write_text("A = 1\ndef g():\n    import pkg.b\n")
    assert tool.cycles(tool.import_graph(pkg)) == [["pkg.b", "pkg.sub", "pkg.sub.a"]]
