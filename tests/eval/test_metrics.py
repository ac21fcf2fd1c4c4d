from __future__ import annotations

import pytest

from mixrag.eval.metrics import exact_match, f1_score, normalize_answer
from mixrag.eval.retrieval import (
    answer_in_passages,
    first_gold_rank,
    mean_reciprocal_rank,
    recall_at_k,
)


def test_normalize_like_official_squad() -> None:
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("an apple, a day") == "apple day"
    assert normalize_answer("Theory") == "theory"  # 'the' only as a whole word


def test_exact_match_is_max_over_references() -> None:
    assert exact_match("Denver Broncos", ["Carolina Panthers", "the Denver Broncos"]) == 1.0
    assert exact_match("Broncos", ["Denver Broncos"]) == 0.0


def test_f1_hand_worked() -> None:
    # pred tokens {denver, broncos, team}, ref {denver, broncos}: P = 2/3, R = 1, F1 = 0.8
    assert f1_score("the Denver Broncos team", ["Denver Broncos"]) == pytest.approx(0.8)
    assert f1_score("Broncos", ["Denver Broncos", "Broncos"]) == 1.0
    assert f1_score("nothing", ["Denver"]) == 0.0
    assert f1_score("x", []) == 0.0


def test_recall_and_mrr() -> None:
    ranks = [1, 3, None, 2]
    assert recall_at_k(ranks, 1) == 0.25
    assert recall_at_k(ranks, 3) == 0.75
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)
    assert mean_reciprocal_rank(ranks, cutoff=2) == pytest.approx((1 + 0.5) / 4)
    assert first_gold_rank(["a", "b", "c"], ["c", "b"]) == 2
    assert first_gold_rank(["a"], ["z"]) is None


def test_answer_in_passages_whole_words_after_normalisation() -> None:
    assert answer_in_passages(["Denver Broncos"], ["The Denver Broncos won."])
    assert not answer_in_passages(["Den"], ["The Denver Broncos won."])
    assert not answer_in_passages([""], ["anything"])
