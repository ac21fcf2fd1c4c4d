"""An answer made only of the question's words (mixrag.echo)."""

from __future__ import annotations

import pytest

from mixrag.decoding.base import Hypothesis, rank
from mixrag.echo import echoes_question

Q = "What is a popular strolling destination for the Varsovians?"


@pytest.mark.parametrize(
    ("answer", "echo"),
    [
        ("strolling destination", True),
        ("The Strolling destination.", True),  # case, articles and punctuation dropped
        ("Varsovians", True),
        ("the Krasiński Palace Garden", False),
        ("popular garden", False),  # one word the question lacks
        ("", False),  # no words: not an echo
        ("the", False),  # only an article: no words after normalising
    ],
)
def test_echoes_question(answer: str, echo: bool) -> None:
    assert echoes_question(answer, Q) is echo


def test_rank_puts_the_accepted_first_each_group_by_score() -> None:
    hyps = [Hypothesis((i,), -float(i), -float(i), (), "eos") for i in range(5)]
    assert [h.token_ids for h in rank(hyps, 3)] == [(0,), (1,), (2,)]
    odd = rank(hyps, 5, accept=lambda ids: ids[0] % 2 == 1)
    assert [h.token_ids for h in odd] == [(1,), (3,), (0,), (2,), (4,)]
