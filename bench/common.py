"""Shared helpers for the benchmarks: machine description, timing statistics, output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.split("\n")[1]
        mem = f"{mem.split()[1]} GiB"
    except (OSError, IndexError):
        pass
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 / p95 (linear interpolation, numpy's default), mean and count."""
    if not values:
        return {}
    import numpy as np

    p50, p95 = np.percentile(values, [50, 95])
    return {
        "p50": float(p50),
        "p95": float(p95),
        "mean": statistics.fmean(values),
        "n": len(values),
    }


def write_json(path: str | Path, data: Any) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=2) + "\n")
