"""``import mixrag``: light to import, every exported name resolves to the library's object."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import mixrag

HEAVY = ("torch", "transformers", "sentence_transformers", "numpy", "faiss")


def test_import_mixrag_imports_no_model_library() -> None:
    # a fresh interpreter: this one has imported everything already
    probe = "import sys, mixrag; print(' '.join(m for m in {} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe.format(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "", f"import mixrag imported {out.stdout.strip()}"


def test_the_lazy_names_are_the_ones_type_checkers_see() -> None:
    """mypy reads the ``if TYPE_CHECKING:`` imports, Python the ``_LAZY`` table: the two
    must name the same module for every exported name."""
    tree = ast.parse(Path(mixrag.__file__).read_text(encoding="utf-8"))
    guarded = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    typed = {
        alias.name: node.module
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert typed == mixrag._LAZY
    assert set(mixrag.__all__) == {*mixrag._LAZY, "Hit", "Passage", "__version__"}


@pytest.mark.parametrize("name", sorted(mixrag._LAZY))
def test_every_lazy_name_resolves_and_is_kept(name: str) -> None:
    value = getattr(mixrag, name)
    assert value is getattr(importlib.import_module(mixrag._LAZY[name]), name)
    assert vars(mixrag)[name] is value  # the next access is a plain attribute


def test_the_entry_point_wraps_the_objects_the_cli_uses() -> None:
    from mixrag.answer import Answer, RAGConfig
    from mixrag.index.folder import Index
    from mixrag.knowledge_base import KnowledgeBase
    from mixrag.rag import RAG

    assert mixrag.KnowledgeBase is KnowledgeBase and mixrag.RAG is RAG
    assert mixrag.Index is Index and mixrag.Answer is Answer and mixrag.RAGConfig is RAGConfig
    assert "KnowledgeBase" in dir(mixrag)


def test_an_unknown_name_is_named() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Knowledgebase'"):
        _ = mixrag.Knowledgebase  # type: ignore[attr-defined]
