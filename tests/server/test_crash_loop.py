"""A served index survives SIGKILL: bench/crash_loop.py's 20 seeded kills, nothing lost.

The loop runs as its own process (it starts and kills ``mixrag serve`` subprocesses);
see its docstring for what it checks after every kill and restart.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers import REPO


@pytest.mark.slow
def test_twenty_kills_lose_no_acknowledged_write(tmp_path: Path) -> None:
    out = tmp_path / "crash_loop.json"
    cmd = [sys.executable, str(REPO / "bench" / "crash_loop.py")]
    cmd += ["--kills", "20", "--seed", "0", "--work", str(tmp_path / "work"), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["violations"] == [], (tmp_path / "work" / "server.log").read_text()[-3000:]
    assert result["errors"] == []
    assert result["kills_survived"] == 20
    assert done.returncode == 0
    # the kills landed on work under way: about two writes cut off by each
    assert result["cut"]["ops_in_doubt"] >= 10
    assert result["acknowledged"]["upload"] > 0 and result["acknowledged"]["delete"] > 0
    assert result["searches"] > 0
