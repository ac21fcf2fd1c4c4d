"""Generator fixtures: each real model loads once per session (converted on first use).

SmolLM2-135M carries most tests because it is fast; Qwen2.5-0.5B has a smoke test so
both bundled generators are exercised. Both load from the user cache
(``$MIXRAG_CACHE`` or ~/.cache/mixrag/models): the first run on a machine converts
the GGUF files (about 25 s and 60 s), later runs only load.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mixrag.generator import TransformersGenerator
from tests.conftest import _bundled
from tests.generator.tiny_gguf import write_tiny_gguf


@pytest.fixture(autouse=True)
def _torch_threads() -> Iterator[None]:
    """One torch thread by default (MIXRAG_TEST_THREADS overrides), restored afterwards.

    On the shared 2-core machines two OpenMP threads per process oversubscribe the
    cores as soon as another job runs, and a decoding step (hundreds of small ops,
    each a parallel region) then got 10-25x slower than with one thread (measured:
    12 greedy steps of SmolLM2 took 25 s with 2 threads, 1 s with 1).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("MIXRAG_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smollm2_plain(smollm2: TransformersGenerator) -> TransformersGenerator:
    """The same weights without prefix sharing or prompt grouping: the row-by-row reference."""
    cfg = dataclasses.replace(smollm2.config, share_prefix=False, group_prompts=False)
    return TransformersGenerator(cfg, model=smollm2.model, tokenizer=smollm2.tokenizer)


@pytest.fixture(scope="session")
def qwen() -> TransformersGenerator:
    return _bundled("qwen2.5-0.5b")


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60 kB random llama GGUF with a byte-level tokenizer and a chat template."""
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")
