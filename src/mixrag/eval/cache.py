"""Per-question evaluation results kept in SQLite, so an interrupted run resumes.

One file per report folder (``cache.sqlite``): a ``meta`` row with the setup's
fingerprint (dataset bytes, index contents, generator and answering settings) and one
``records`` row per (run, question id), committed after every batch. Opening the file
with a different fingerprint is an error that names what changed: results of two
setups are never mixed. SQLite in WAL mode survives a killed process mid-write.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mixrag.errors import MixragError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    run TEXT NOT NULL,
    qid TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (run, qid)
);
"""


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


class ResultCache:
    """Records of finished (run, question) pairs under one setup fingerprint."""

    def __init__(self, path: str | Path, fingerprint: dict[str, Any], fresh: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        fp = json.dumps(fingerprint, sort_keys=True)
        row = self._db.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()
        if row is not None and row[0] != fp and not fresh:
            changed = _differences(json.loads(row[0]), fingerprint)
            self._db.close()
            raise MixragError(
                f"{self.path} holds results of another setup ({'; '.join(changed[:4])}); "
                "pass --fresh to discard them, or choose another --out folder"
            )
        with self._db:
            if fresh or row is None or row[0] != fp:
                self._db.execute("DELETE FROM records")
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('fingerprint', ?)", (fp,)
            )

    def records(self, run: str) -> dict[str, dict[str, Any]]:
        """Question id -> record of every finished question of ``run``."""
        rows = self._db.execute("SELECT qid, record FROM records WHERE run = ?", (run,))
        return {qid: json.loads(rec) for qid, rec in rows}

    def put(self, run: str, records: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Store finished questions of ``run`` in one transaction."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO records (run, qid, record) VALUES (?, ?, ?)",
                [(run, qid, json.dumps(rec)) for qid, rec in records],
            )

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
