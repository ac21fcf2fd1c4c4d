"""The prompt builders produce the layouts they promise; the answer stop rule."""

from __future__ import annotations

import pytest

from mixrag.generator.prompts import PromptFormat, clean_answer, format_passage, is_finished
from mixrag.types import Passage

P1 = Passage(id="1", doc_id="d", title="Zorbia", text="Zorbia's capital is Vell.")
P2 = Passage(id="2", doc_id="d", title="Quarn", text="Quarn exports copper.")
Q = "What is the capital of Zorbia?"


def _users(messages: list[dict[str, str]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "user"]


def test_passage_prompt_has_title_text_then_question() -> None:
    msgs = PromptFormat(style="short", few_shot=False).passage(Q, P1)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert "shortest span" in msgs[0]["content"]
    user = msgs[-1]["content"]
    assert user == f"Title: Zorbia\nZorbia's capital is Vell.\n\nQuestion: {Q}"
    assert user.index("Vell") < user.index(Q)  # passage before question


def test_plain_style_adds_no_system_message() -> None:
    msgs = PromptFormat(style="plain", few_shot=False).passage(Q, P1)
    assert [m["role"] for m in msgs] == ["user"]


def test_few_shot_turns_come_before_the_question() -> None:
    msgs = PromptFormat(style="short", few_shot=True).passage(Q, P1)
    roles = [m["role"] for m in msgs]
    assert roles[0] == "system"
    assert roles[1:-1] == ["user", "assistant"] * ((len(roles) - 2) // 2)
    assert len(roles) >= 6  # at least two worked examples
    assert Q in msgs[-1]["content"]
    for m in msgs[1:-1]:
        assert Q not in m["content"]
        if m["role"] == "assistant":  # short spans, not sentences
            assert len(m["content"].split()) <= 4 and not m["content"].endswith(".")


def test_examples_are_identical_across_questions() -> None:
    # The shared prefix (and its KV cache) relies on the examples not depending on x.
    fmt = PromptFormat()
    a, b = fmt.passage("q one?", P1), fmt.passage("q two?", P2)
    assert a[:-1] == b[:-1]


def test_concat_numbers_passages_in_order() -> None:
    msgs = PromptFormat(style="short", few_shot=False).concat(Q, [P1, P2])
    user = msgs[-1]["content"]
    assert user.startswith("[1] Title: Zorbia")
    assert "\n\n[2] Title: Quarn\nQuarn exports copper." in user
    assert user.endswith(f"Question: {Q}")
    assert user.index("[1]") < user.index("[2]") < user.index(Q)
    with pytest.raises(ValueError, match="at least one passage"):
        PromptFormat().concat(Q, [])


def test_closed_book_has_no_passage() -> None:
    for few_shot in (False, True):
        msgs = PromptFormat(few_shot=few_shot).closed_book(Q)
        assert msgs[-1]["content"] == f"Question: {Q}"
        assert all("Title:" not in u for u in _users(msgs))


def test_untitled_passage_is_just_text() -> None:
    assert format_passage(Passage(id="x", doc_id="x", title="", text="abc")) == "abc"


def test_bad_style_is_named() -> None:
    with pytest.raises(ValueError, match="'verbose'"):
        PromptFormat(style="verbose")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Paris.", "Paris"),
        ("  the Sella River. \n\nExplanation: ...", "the Sella River"),
        ("1904", "1904"),
        ("U.S.", "U.S"),
        ("", ""),
        ("\nlate", ""),
    ],
)
def test_clean_answer(raw: str, clean: str) -> None:
    assert clean_answer(raw) == clean


def test_is_finished_at_newline() -> None:
    assert not is_finished("Paris")
    assert is_finished("Paris\n")
