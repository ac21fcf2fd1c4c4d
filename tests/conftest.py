"""Session-wide fixtures: models load once, threads are pinned, nothing touches the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

torch.set_num_threads(2)
torch.manual_seed(0)


@pytest.fixture(scope="session")
def encoder():  # type: ignore[no-untyped-def]
    """The bundled all-MiniLM-L6-v2, loaded once for the whole run."""
    from mixrag.encoders import SentenceTransformerEncoder

    enc = SentenceTransformerEncoder()
    enc.load()
    return enc


def _bundled(name: str):  # type: ignore[no-untyped-def]
    """A bundled generator, loaded once. In CI a missing package fails; locally it skips."""
    from mixrag.errors import ModelLoadError
    from mixrag.generator import GeneratorConfig, TransformersGenerator

    try:
        return TransformersGenerator(GeneratorConfig(model=name)).load()
    except ModelLoadError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def smollm2():  # type: ignore[no-untyped-def]
    """SmolLM2-135M-Instruct with the default config (prefix sharing on)."""
    return _bundled("smollm2-135m")


@pytest.fixture
def dead_pid() -> int:
    """The id of a process that has exited and been reaped (as a killed writer's is)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="session")
def tiny_squad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/tiny_squad.py's SQUAD written as a JSON file."""
    import json

    from tests.tiny_squad import SQUAD

    path = tmp_path_factory.mktemp("tiny-squad") / "tiny-squad.json"
    path.write_text(json.dumps(SQUAD))
    return path


@pytest.fixture(scope="session")
def tiny_index(tiny_squad: Path, encoder):  # type: ignore[no-untyped-def]
    """An index of the tiny SQuAD file's three paragraphs (read-only for tests)."""
    from mixrag.index.folder import Index

    index = Index.open(tiny_squad.parent / "idx", create=True, encoder=encoder)
    index.add([tiny_squad])
    return index


@pytest.fixture(scope="session")
def pg_url():  # type: ignore[no-untyped-def]
    """A throwaway PostgreSQL with pgvector on 127.0.0.1 (tests/pgserver.py), one per run.

    In CI a missing server, extension or driver fails the run; locally it skips.
    """
    from tests.pgserver import has_pgvector, local_postgres, pg_bindir

    bindir = pg_bindir()
    problem = None
    if bindir is None:
        problem = "PostgreSQL is not installed"
    elif not has_pgvector(bindir):
        problem = "the pgvector extension is not installed"
    else:
        try:
            import pgvector.psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError:
            problem = "psycopg / psycopg_pool / pgvector are not installed"
    if problem is not None:
        message = f"{problem}: run scripts/setup.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with local_postgres() as url:
        yield url


_schemas = iter(range(1_000_000))


@pytest.fixture
def pg_store_url(pg_url: str):  # type: ignore[no-untyped-def]
    """``postgresql://...#schema`` of a fresh, empty schema, dropped after the test."""
    import psycopg

    schema = f"test_{next(_schemas)}"
    yield f"{pg_url}#{schema}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# A test that uses one of these (directly or through another fixture) loads a real model
# or starts a server process: it is marked ``slow``, so ``pytest -m "not slow"`` is the
# seconds-long subset for the edit-test loop (the README's test command runs all).
SLOW_FIXTURES = frozenset({"encoder", "smollm2", "qwen", "pg_url"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
