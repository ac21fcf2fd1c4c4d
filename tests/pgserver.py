"""A throwaway PostgreSQL server on loopback for the tests and benchmarks.

``initdb`` a fresh cluster in a temporary folder, start it on 127.0.0.1 at a free
port with its socket in that folder, create a database, and give back its URL; stop
and delete it afterwards. PostgreSQL refuses to run as root, so as root the server
runs as the ``postgres`` system user (created by the Debian package). The pgvector
extension must be installed into the server (scripts/setup.sh builds it).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def pg_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian layout), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


def has_pgvector(bindir: Path) -> bool:
    share = subprocess.run(
        [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return bool(share) and (Path(share) / "extension" / "vector.control").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_postgres(dbname: str = "mixrag") -> Iterator[str]:
    """Run a temporary PostgreSQL; yields ``postgresql://mixrag@127.0.0.1:PORT/<dbname>``."""
    bindir = pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (scripts/setup.sh installs it)")
    root = Path(tempfile.mkdtemp(prefix="mixrag-pg-"))
    data = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        os.chmod(root, 0o700)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8"}

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, env=env, cwd=root)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "mixrag", "--auth=trust", "-E", "UTF8")
        run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
            "-c fsync=off -c max_connections=50 -c shared_buffers=64MB",
            "start",
        )
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mixrag", dbname)
        yield f"postgresql://mixrag@127.0.0.1:{port}/{dbname}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                check=False,
                cwd=root,
            )
            for _ in range(50):
                if not (data / "postmaster.pid").exists():
                    break
                time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
