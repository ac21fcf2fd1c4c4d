"""Encoding on a local Ray cluster (2 CPUs, loopback): same vectors, nothing dropped,
a dead worker retried, Ray never imported without --ray."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mixrag.encoders import SentenceTransformerEncoder
from mixrag.errors import MixragError
from mixrag.index.folder import Index

TEXTS = [
    f"Passage {i}: " + " ".join(f"word{j % 37}" for j in range(i % 60 + 3)) for i in range(240)
]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    """One local Ray cluster for the module: 2 CPUs, bound to 127.0.0.1."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("ray is not installed: pip install 'mixrag[ray]'")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}},
    )
    yield ray
    ray.shutdown()


def ray_encoder(local: SentenceTransformerEncoder, **kw: object):  # type: ignore[no-untyped-def]
    from mixrag.encoders.ray import RayEncoder, RayEncoderConfig

    return RayEncoder(local, RayEncoderConfig(address="auto", workers=2, **kw))  # type: ignore[arg-type]


def test_ray_vectors_equal_single_process_ones(
    ray_cluster: object, encoder: SentenceTransformerEncoder
) -> None:
    want = encoder.encode(TEXTS)
    got = ray_encoder(encoder, batch_size=32).encode(TEXTS)
    assert got.shape == want.shape
    # Not bit-identical: batches are padded differently on the workers (see the module).
    np.testing.assert_allclose(got, want, atol=1e-5)
    q = want[:5]
    assert (np.argsort(-(q @ got.T), 1)[:, :10] == np.argsort(-(q @ want.T), 1)[:, :10]).all()


def test_a_dead_worker_is_restarted_and_its_batch_retried(
    ray_cluster: object,
    encoder: SentenceTransformerEncoder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mixrag.encoders.ray import CRASH_ONCE_ENV

    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ONCE_ENV, str(marker))
    got = ray_encoder(encoder, batch_size=40).encode(TEXTS[:120])
    assert marker.exists()  # a worker did die mid-batch
    np.testing.assert_allclose(got, encoder.encode(TEXTS[:120]), atol=1e-5)


def test_index_with_ray_matches_index_without(
    ray_cluster: object, encoder: SentenceTransformerEncoder, tmp_path: Path
) -> None:
    from tests.helpers import make_docs

    docs = make_docs(tmp_path / "docs")
    plain = Index.open(tmp_path / "plain", create=True, encoder=encoder)
    plain.add([docs])
    spread = Index.open(tmp_path / "ray", create=True, encoder=encoder)
    spread.use_encoder(ray_encoder(encoder, batch_size=2))
    report = spread.add([docs])
    assert report.ok and report.passages_encoded == plain.store.counts()["passages"] == 3
    ids_a, vecs_a = next(plain.store.iter_vectors(plain.dim))
    ids_b, vecs_b = next(spread.store.iter_vectors(spread.dim))
    assert ids_a.tolist() == ids_b.tolist()
    np.testing.assert_allclose(vecs_b, vecs_a, atol=1e-5)


def test_bad_ray_address_is_refused_by_name(encoder: SentenceTransformerEncoder) -> None:
    from mixrag.encoders.ray import RayEncoderConfig

    with pytest.raises(MixragError, match="'http://x'"):
        RayEncoderConfig(address="http://x")


def test_ray_is_not_imported_without_the_flag(tmp_path: Path) -> None:
    from tests.helpers import make_docs

    docs = make_docs(tmp_path / "docs")
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mixrag.cli.main import app\n"
        f"r = CliRunner().invoke(app, ['index', {str(docs)!r}, '--index', "
        f"{str(tmp_path / 'idx')!r}, '--no-progress'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print('ray' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip().splitlines()[-1] == "False"
