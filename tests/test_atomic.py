"""Crash-safe writes: the target is the old file or the new one, never a torn one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mixrag.atomic import (
    atomic_path,
    atomic_write,
    atomic_write_json,
    sweep_temp_files,
    temp_path,
)


def test_write_replaces_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write(target, "old")
    atomic_write_json(target, {"b": 1, "a": "é"}, sort_keys=True)
    assert target.read_text(encoding="utf-8") == '{\n  "a": "é",\n  "b": 1\n}\n'
    atomic_write(target, b"\x00bytes")
    assert target.read_bytes() == b"\x00bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "index.faiss"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half of the ne")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["index.faiss"]


def test_temporary_names_are_hidden_and_per_writer(tmp_path: Path) -> None:
    tmp = temp_path(tmp_path / "x.txt")
    assert tmp.parent == tmp_path and tmp.name.startswith(".x.txt.") and tmp.name.endswith(".tmp")


def test_the_sweep_deletes_only_the_temporaries_of_writers_that_are_gone(
    tmp_path: Path, dead_pid: int
) -> None:
    crashed = tmp_path / f".vectors-3.faiss.{dead_pid}.140.tmp"
    running_here = temp_path(tmp_path / "mixrag.json")
    running_elsewhere = tmp_path / f".mixrag.json.{os.getppid()}.7.tmp"
    not_ours = [tmp_path / ".notes.tmp", tmp_path / "a.123.4.tmp"]
    (tmp_path / "sub").mkdir()
    in_a_subfolder = tmp_path / "sub" / f".x.{dead_pid}.1.tmp"
    for f in [crashed, running_here, running_elsewhere, *not_ours, in_a_subfolder]:
        f.write_text("x")
    assert sweep_temp_files(tmp_path) == [crashed]
    assert not crashed.exists()
    assert all(f.exists() for f in [running_here, running_elsewhere, *not_ours, in_a_subfolder])
