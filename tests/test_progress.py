"""quiet_progress: bars off while any load runs, in any thread; no environment touched."""

from __future__ import annotations

import os
import threading

from transformers.utils import logging as hf_logging

from mixrag.progress import quiet_progress


def test_overlapping_loads_in_two_threads_keep_bars_off_until_the_last_ends() -> None:
    hf_logging.enable_progress_bar()
    env = dict(os.environ)
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with quiet_progress():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    t = threading.Thread(target=first)
    t.start()
    first_in.wait(5)
    with quiet_progress():
        second_in.set()
        first_out.wait(5)  # the first load ended while this one still runs
        seen.append(hf_logging.is_progress_bar_enabled())
    t.join()
    assert seen == [False]
    assert hf_logging.is_progress_bar_enabled()  # the setting found is restored
    assert dict(os.environ) == env


def test_a_disabled_setting_stays_disabled() -> None:
    hf_logging.disable_progress_bar()
    try:
        with quiet_progress():
            pass
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.enable_progress_bar()
