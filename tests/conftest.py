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

REPO = Path(__file__).resolve().parent.parent
DEMO_SQUAD = REPO / "data" / "demo" / "squad-dev-demo.json"
FULL_SQUAD = REPO / "data" / "squad" / "squaddev_v1.1.json.gz"


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
