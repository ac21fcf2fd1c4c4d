"""The prompt format: the one place that decides what x and z look like to the generator.

Builders return chat messages (``[{"role": ..., "content": ...}]``); the generator's
``render`` applies its model's chat template. Four layouts:

* :meth:`PromptFormat.passage`: question x with ONE passage z, the title and text
  concatenated with the question as in Lewis et al. (2020, §2.3): RAG-Sequence and
  RAG-Token score/decode y under each of these K prompts.
* :meth:`PromptFormat.concat`: x with K numbered passages ``[1]..[K]`` in one prompt
  (the "stuff everything into the context" baseline).
* :meth:`PromptFormat.closed_book`: x alone (no retrieval).
* :meth:`PromptFormat.cited_concat`: the concat layout asking for the answer and the
  ``[n]`` of its passage (prompted citations, measured by ``mixrag eval --attribution``).

Styles: ``"plain"`` is the model's own chat prompt with nothing added; ``"short"``
adds a system instruction asking for the shortest span, which is what extractive QA
(SQuAD EM/F1) rewards. ``few_shot`` prepends hand-written made-up examples as earlier
chat turns, which the small models imitate better than an instruction alone.
The defaults were picked by ``bench/prompt_study.py`` (results in
``bench/results/prompt_study.md``).

Answers end at the first end-of-turn/EOS token or newline: :func:`is_finished` and
:func:`clean_answer` implement that stop rule on decoded text.

A rendered single-passage prompt is a :class:`Prompt`: a string that also knows where
its passage lies, ``head | passage | tail``. The head (chat header, instruction,
few-shot turns) and the passage do not depend on the question, so a generator may
compute their keys and values once per passage and reuse them for every question
(``generator.passage_cache``). The three segments are tokenised separately, by the
cached and the uncached path alike, so both feed the model the same token ids; the
generator puts the passage's end before or after the blank line that follows it,
wherever its tokeniser splits anyway, so the ids are also those of the whole string
(checked for both bundled tokenisers in tests/generator/test_passage_cache.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mixrag.types import Passage

Message = dict[str, str]

STYLES = ("plain", "short")
DEFAULT_STYLE = "short"
DEFAULT_FEW_SHOT = True

_SHORT_PASSAGE = (
    "Answer the question using the passage. Reply with the shortest span copied from "
    "the passage that answers it: a few words, not a full sentence, no explanation."
)
_SHORT_CONCAT = (
    "Answer the question using the numbered passages. Reply with the shortest span copied "
    "from a passage that answers it: a few words, not a full sentence, no explanation."
)
_CITE_CONCAT = (
    "Answer the question using the numbered passages. Reply with the shortest span copied "
    "from a passage that answers it, then the number of that passage in brackets, "
    "for example: 1904 [2]. No explanation."
)
_SHORT_CLOSED = (
    "Answer the question with the shortest possible answer: a few words, "
    "not a full sentence, no explanation."
)

# Made-up facts (fictional places and people) so the examples can leak nothing about
# any benchmark; the answers are short spans copied from the passage, as SQuAD's are.
_EXAMPLE_PASSAGES = (
    Passage(
        id="example-1",
        doc_id="example-1",
        title="Lake Varna",
        text=(
            "Lake Varna is a freshwater lake in the northern highlands of Eldoria. It covers "
            "about 42 square kilometres and is fed mainly by the Sella River. The fishing "
            "village of Korrin, founded in 1612, lies on its eastern shore."
        ),
    ),
    Passage(
        id="example-2",
        doc_id="example-2",
        title="Marta Lindqvist",
        text=(
            "Marta Lindqvist (1871-1938) was an engineer who designed the first steel "
            "suspension bridge in the port city of Osterhaven. After the bridge opened in "
            "1904, she taught structural mechanics at the city's polytechnic for twenty years."
        ),
    ),
)
# (question, index of the passage holding the answer, answer)
_PASSAGE_EXAMPLES = (
    ("Which river feeds Lake Varna?", 0, "the Sella River"),
    ("When did the Osterhaven bridge open?", 1, "1904"),
    ("What did Lindqvist teach at the polytechnic?", 1, "structural mechanics"),
)
_CLOSED_EXAMPLES = (
    ("Which planet is known as the Red Planet?", "Mars"),
    ("Who wrote the novel Pride and Prejudice?", "Jane Austen"),
)


def format_passage(passage: Passage) -> str:
    """One passage z as the generator sees it: title line, then text."""
    return f"Title: {passage.title}\n{passage.text}" if passage.title else passage.text


def passage_segment(passage: Passage) -> str:
    """The question-independent text of a passage turn: the passage and the blank line after."""
    return f"{format_passage(passage)}\n\n"


def _passage_turn(question: str, passage: Passage) -> str:
    # Passage first, question last: a decoder-only model answers what it read last.
    return f"{passage_segment(passage)}Question: {question}"


def _concat_turn(question: str, passages: Sequence[Passage]) -> str:
    blocks = [f"[{i}] {format_passage(p)}" for i, p in enumerate(passages, start=1)]
    return "\n\n".join(blocks) + f"\n\nQuestion: {question}"


def concat_lead(passages: Sequence[Passage]) -> str:
    """The start of a concat turn that depends on its first passage alone: ``[1]``, the
    passage and the blank line after it. It follows the concat head, so its keys and
    values are the same for every question that ranks this passage first."""
    return f"[1] {passage_segment(passages[0])}"


def mark_concat(rendered: str, messages: Sequence[Message], passages: Sequence[Passage]) -> str:
    """A rendered :meth:`PromptFormat.concat` prompt with its first passage marked as its
    passage segment (:meth:`Prompt.leading`), so a generator caches that block."""
    return Prompt.leading(
        rendered, messages[-1]["content"], concat_lead(passages), passages[0].id or None
    )


def _closed_turn(question: str) -> str:
    return f"Question: {question}"


@dataclass(frozen=True)
class PromptFormat:
    """A prompt style and whether to add the few-shot examples; builds chat messages."""

    style: str = DEFAULT_STYLE
    few_shot: bool = DEFAULT_FEW_SHOT

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"prompt style {self.style!r} is not one of {', '.join(STYLES)}")

    def _system(self, instruction: str) -> list[Message]:
        # "plain" keeps the model's default system prompt (the template adds it).
        return [{"role": "system", "content": instruction}] if self.style == "short" else []

    @staticmethod
    def _shots(turns: Sequence[tuple[str, str]]) -> list[Message]:
        out: list[Message] = []
        for user, answer in turns:
            out.append({"role": "user", "content": user})
            out.append({"role": "assistant", "content": answer})
        return out

    def passage(self, question: str, passage: Passage) -> list[Message]:
        """Messages for x with one passage z (RAG-Sequence / RAG-Token)."""
        shots = (
            [(_passage_turn(q, _EXAMPLE_PASSAGES[i]), a) for q, i, a in _PASSAGE_EXAMPLES]
            if self.few_shot
            else []
        )
        return [
            *self._system(_SHORT_PASSAGE),
            *self._shots(shots),
            {"role": "user", "content": _passage_turn(question, passage)},
        ]

    def concat(self, question: str, passages: Sequence[Passage]) -> list[Message]:
        """Messages for x with the K passages numbered [1]..[K] in one prompt."""
        if not passages:
            raise ValueError("concat needs at least one passage; use closed_book for none")
        # Each example shows both made-up passages so the model sees a distractor.
        shots = (
            [(_concat_turn(q, _EXAMPLE_PASSAGES), a) for q, _i, a in _PASSAGE_EXAMPLES]
            if self.few_shot
            else []
        )
        return [
            *self._system(_SHORT_CONCAT),
            *self._shots(shots),
            {"role": "user", "content": _concat_turn(question, passages)},
        ]

    def cited_concat(self, question: str, passages: Sequence[Passage]) -> list[Message]:
        """Messages for x with K numbered passages, asking for the answer and then the
        ``[n]`` of its passage (``mixrag eval --attribution``'s prompted citations).

        The instruction is given in every style (asking is the point); the few-shot
        replies show the layout ``answer [n]``.
        """
        if not passages:
            raise ValueError("cited_concat needs at least one passage")
        shots = (
            [
                (_concat_turn(q, _EXAMPLE_PASSAGES), f"{a} [{i + 1}]")
                for q, i, a in _PASSAGE_EXAMPLES
            ]
            if self.few_shot
            else []
        )
        return [
            {"role": "system", "content": _CITE_CONCAT},
            *self._shots(shots),
            {"role": "user", "content": _concat_turn(question, passages)},
        ]

    def closed_book(self, question: str) -> list[Message]:
        """Messages for x alone (no passage)."""
        shots = [(_closed_turn(q), a) for q, a in _CLOSED_EXAMPLES] if self.few_shot else []
        return [
            *self._system(_SHORT_CLOSED),
            *self._shots(shots),
            {"role": "user", "content": _closed_turn(question)},
        ]


class Prompt(str):
    """A rendered prompt whose characters ``start:end`` are its passage segment
    (``start == end``: no passage, only where the question-independent head ends).

    It is a ``str`` (equal to, and hashed like, its text), so everything that handles
    prompts as strings keeps working; a generator that knows the type splits it into
    ``head`` (``[:start]``), ``passage`` (``[start:end]``) and ``tail`` (``[end:]``).
    ``passage_id`` names the passage (its index id) where the KV may be kept on disk.
    """

    start: int
    end: int
    passage_id: str | None

    def __new__(
        cls, text: str, start: int = 0, end: int = 0, passage_id: str | None = None
    ) -> Prompt:
        if not 0 <= start <= end <= len(text):
            raise ValueError(
                f"passage segment {start}:{end} is not inside a prompt of {len(text)} characters"
            )
        obj = super().__new__(cls, text)
        obj.start, obj.end, obj.passage_id = start, end, passage_id
        return obj

    def __reduce__(self) -> tuple[type[Prompt], tuple[str, int, int, str | None]]:
        return (Prompt, (str(self), self.start, self.end, self.passage_id))

    @classmethod
    def around(cls, text: str, segment: str, passage_id: str | None = None) -> Prompt | str:
        """``text`` with its last occurrence of ``segment`` marked; plain ``text`` if absent."""
        at = text.rfind(segment) if segment else -1
        return text if at < 0 else cls(text, at, at + len(segment), passage_id)

    @classmethod
    def headed(cls, text: str, segment: str) -> Prompt | str:
        """``text`` with its head marked as ending where the last ``segment`` begins.

        The segment is empty (``start == end``): a prompt without a passage (closed-book,
        concat) whose head (chat header, instruction, few-shot turns) is the same for
        every question, so the generator keeps its KV and runs only the rest. Plain
        ``text`` if ``segment`` is absent.
        """
        at = text.rfind(segment) if segment else -1
        return text if at <= 0 else cls(text, at, at)

    @classmethod
    def leading(
        cls, text: str, content: str, lead: str, passage_id: str | None = None
    ) -> Prompt | str:
        """``text`` with ``lead``, the start of its last turn's ``content``, marked as its
        passage segment: the head before it and the lead itself do not depend on the
        rest of the turn (concat's first passage, :func:`concat_lead`). ``text`` as it
        was where ``content`` is not found or does not start with ``lead``.
        """
        at = text.rfind(content) if content else -1
        if at <= 0 or not lead or not content.startswith(lead):
            return text
        return cls(text, at, at + len(lead), passage_id)

    @property
    def segments(self) -> tuple[str, str, str]:
        """(head, passage, tail): the three parts, tokenised separately."""
        text = str(self)
        return text[: self.start], text[self.start : self.end], text[self.end :]


def is_finished(text: str) -> bool:
    """True once decoded answer text has reached the stop rule (a newline)."""
    return "\n" in text


def clean_answer(text: str) -> str:
    """The answer string: cut at the first newline, strip white space and a final period."""
    text = text.split("\n", 1)[0].strip()
    while text.endswith("."):
        text = text[:-1].rstrip()
    return text
