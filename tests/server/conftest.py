"""A served tiny index (the three documents of tests/index) with the bundled encoder and SmolLM2."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from tests.server.helpers import Served, build_index, small_config

from mixrag.generator import TransformersGenerator
from mixrag.server import create_app


@pytest.fixture(scope="package", autouse=True)
def one_thread() -> Iterator[None]:
    """Keep CPU use low: one torch thread for these tests, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, encoder: object, smollm2: TransformersGenerator
) -> Iterator[Served]:
    from fastapi.testclient import TestClient

    root = tmp_path_factory.mktemp("served")
    index = build_index(root, encoder)
    config = small_config(index)
    app = create_app(config, encoder=encoder, generator=smollm2)  # type: ignore[arg-type]
    with TestClient(app) as client:
        yield Served(client, index, config)
