"""Keeping transformers' progress bars off stderr while models load."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0  # loads in progress, in any thread
_was_enabled = False  # transformers' setting before the first of them began


@contextmanager
def quiet_progress() -> Iterator[None]:
    """No transformers / sentence-transformers bars while loading: a library reports by
    logging, and the CLI and the server own the terminal.

    Uses transformers' own switch (``disable_progress_bar``), which is process-wide: the
    loads in progress are counted under a lock, the first turns the bars off and the
    last restores the setting it found, so loads in several threads (a server's worker
    and its request threads) never turn bars back on under each other. No environment
    variable is touched. (transformers' one-time GGUF conversion draws its own bar.)
    """
    global _depth, _was_enabled
    from transformers.utils import logging as hf_logging

    with _lock:
        if _depth == 0:
            _was_enabled = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                hf_logging.enable_progress_bar()
