"""Keeping third-party progress bars off stderr while models load."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_progress() -> Iterator[None]:
    """No tqdm bars from transformers/gguf while loading: a library reports by logging,
    and a bar on stderr would corrupt the CLI's --json output."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    env_before = os.environ.get("TQDM_DISABLE")
    hf_logging.disable_progress_bar()
    os.environ["TQDM_DISABLE"] = "1"  # the GGUF de-quantizer uses tqdm directly
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
        if env_before is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = env_before
