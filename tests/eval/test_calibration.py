from __future__ import annotations

import math
import re

import pytest

from mixrag.eval.metrics import expected_calibration_error, reliability_bins


def test_ece_hand_worked() -> None:
    # 5 bins of width 0.2. Bin [0.2, 0.4): 0.3, 0.25 -> conf 0.275, acc 1/2, gap 0.225.
    # Bin [0.6, 0.8): 0.6 -> conf 0.6, acc 1, gap 0.4. Bin [0.8, 1]: 0.9, 0.8 -> conf 0.85,
    # acc 1/2, gap 0.35. ECE = (2 * 0.225 + 1 * 0.4 + 2 * 0.35) / 5 = 1.55 / 5 = 0.31.
    conf = [0.9, 0.8, 0.3, 0.25, 0.6]
    correct = [True, False, False, True, True]
    assert expected_calibration_error(conf, correct, bins=5) == pytest.approx(0.31)
    # 0/1 floats (exact match) give the same answer as bools
    assert expected_calibration_error(conf, [1.0, 0.0, 0.0, 1.0, 1.0], bins=5) == pytest.approx(
        0.31
    )


def test_reliability_bins_hand_worked() -> None:
    rel = reliability_bins([0.9, 0.8, 0.3, 0.25, 0.6], [1, 0, 0, 1, 1], bins=5)
    assert [r.lo for r in rel] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert [r.hi for r in rel] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert [r.count for r in rel] == [0, 2, 0, 1, 2]
    assert rel[0].confidence is None and rel[0].accuracy is None
    assert rel[1].confidence == pytest.approx(0.275) and rel[1].accuracy == 0.5
    assert rel[3].confidence == pytest.approx(0.6) and rel[3].accuracy == 1.0  # lo edge: [lo, hi)
    assert rel[4].confidence == pytest.approx(0.85) and rel[4].accuracy == 0.5


def test_edges_one_and_zero() -> None:
    rel = reliability_bins([1.0, 0.0, 0.1], [True, False, True], bins=10)
    assert rel[-1].count == 1 and rel[-1].accuracy == 1.0  # exactly 1.0: last bin
    assert rel[0].count == 1
    assert rel[1].count == 1  # 0.1 is the lower edge of [0.1, 0.2)
    assert sum(r.count for r in rel) == 3


def test_perfectly_calibrated_is_zero() -> None:
    # every bin's accuracy equals its mean confidence
    conf = [0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 0.0]
    correct = [1, 0, 1, 0, 1, 1, 0]
    assert expected_calibration_error(conf, correct) == pytest.approx(0.0)


def test_confident_and_wrong_is_near_one() -> None:
    ece = expected_calibration_error([0.99] * 20, [False] * 20)
    assert ece == pytest.approx(0.99)
    assert expected_calibration_error([1.0, 1.0], [0, 0]) == 1.0


def test_one_bin_is_the_global_gap() -> None:
    conf = [0.2, 0.9, 0.6]
    assert expected_calibration_error(conf, [1, 1, 0], bins=1) == pytest.approx(
        abs(2 / 3 - sum(conf) / 3)
    )


def test_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match=re.escape("1.5")):
        reliability_bins([0.2, 1.5], [1, 0])
    with pytest.raises(ValueError, match=re.escape("-0.1")):
        expected_calibration_error([-0.1], [1])
    with pytest.raises(ValueError, match="nan"):
        reliability_bins([math.nan], [1])
    with pytest.raises(ValueError, match="2 confidences but 1"):
        reliability_bins([0.1, 0.2], [1])
    with pytest.raises(ValueError, match=re.escape("0.5")):
        reliability_bins([0.1], [0.5])  # F1-like scores are not correctness
    with pytest.raises(ValueError, match="bins"):
        reliability_bins([0.1], [1], bins=0)
    with pytest.raises(ValueError, match="at least one"):
        expected_calibration_error([], [])
    assert [r.count for r in reliability_bins([], [], bins=3)] == [0, 0, 0]
