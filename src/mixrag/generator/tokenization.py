"""Prompts and answers as token ids, for one tokeniser: what every generator backend shares.

The in-process generator (:class:`~mixrag.generator.hf.TransformersGenerator`) and a
remote one (:class:`~mixrag.generator.vllm.VLLMGenerator`) must feed their models the
same ids for the same prompt, or their log-probs would differ: both tokenise here.
Only the tokeniser and the model's configuration are needed, never its weights, so a
remote backend serving a large model loads a few megabytes.

* :meth:`Tokenization.render`: chat messages to the prompt string (the model's chat
  template, or a plain "...\\nAnswer:" layout for base models), its passage or its
  head marked (:class:`~mixrag.generator.prompts.Prompt`);
* :meth:`Tokenization.encode`: a prompt to :class:`Encoded` ids, segment by segment;
* :meth:`Tokenization.encode_answer` / :meth:`Tokenization.decode`: answer text <-> ids;
* ``eos_ids``, ``end_id``, ``pad_id``: the ids that end, close and pad an answer.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mixrag.generator.prompts import Message, Prompt, passage_segment

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from mixrag.types import Passage

# End-of-turn markers of common chat formats, added to the model's own EOS ids.
_END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>")


@dataclass(frozen=True)
class Encoded:
    """A tokenised prompt: ``ids``; ``ids[:head]`` is the head, ``ids[head:cached]`` the
    passage (both 0 for a prompt without a passage segment; ``head == cached`` for one
    whose head alone is marked), ``passage_id`` its index id."""

    ids: list[int]
    head: int = 0
    cached: int = 0
    passage_id: str | None = None


def find_eos_ids(tokenizer: PreTrainedTokenizerBase, *configs: Any) -> tuple[int, ...]:
    """The ids that end an answer: the EOS ids of ``configs`` (a model's config, its
    generation config) and the tokeniser's, plus the chat end-of-turn markers it has."""
    ids: set[int] = set()
    for source in configs:
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    # Only added (special) tokens: "</s>" is an ordinary BPE token in some vocabularies.
    added = tokenizer.get_added_vocab()
    ids.update(int(added[t]) for t in _END_TOKENS if t in added)
    return tuple(sorted(ids))


class Tokenization:
    """How one tokeniser turns prompts and answers into ids (module docstring).

    ``eos_ids``: from :func:`find_eos_ids`. Thread-safe: a fast tokeniser is one Rust
    object, so threads sharing it take turns.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, eos_ids: Sequence[int]) -> None:
        self.tokenizer = tokenizer
        self.eos_ids: tuple[int, ...] = tuple(eos_ids)
        self._lock = threading.Lock()
        self.has_template = bool(getattr(tokenizer, "chat_template", None))
        bos = tokenizer.bos_token_id
        # A rendered chat string already holds its special tokens (its template adds
        # BOS where the model wants one), so it is tokenised without adding any; a
        # plain string gets the BOS the tokenizer would add by itself.
        adds_bos = bos is not None and tokenizer("a").input_ids[:1] == [bos]
        self.bos: list[int] = [bos] if (adds_bos and not self.has_template) else []
        # A base model's answer follows "Answer:" after a space; a chat answer starts the turn.
        self.answer_prefix = "" if self.has_template else " "
        pad = tokenizer.pad_token_id
        self.pad_id: int = int(pad if pad is not None else (self.eos_ids[0] if self.eos_ids else 0))

    @property
    def end_id(self) -> int:
        """The token that ends an answer y when it is scored or trained on."""
        eos = self.tokenizer.eos_token_id
        return int(eos if eos is not None else self.eos_ids[0])

    # ---------------------------------------------------------------- prompts

    def render(self, messages: Sequence[Message], passage: Passage | None = None) -> str:
        """The prompt string for chat ``messages``, ready for the assistant's answer.

        Uses the model's chat template (generation prompt added) when it has one;
        otherwise a plain "...\\nAnswer:" layout for base models. ``passage``: the one
        passage of a single-passage prompt; the result is then a
        :class:`~mixrag.generator.prompts.Prompt` that marks it, so its KV can be cached.
        Without one, the head (everything before the last turn's content) is marked.
        """
        if self.has_template:
            with self._lock:
                text = self.tokenizer.apply_chat_template(
                    list(messages), tokenize=False, add_generation_prompt=True
                )
            assert isinstance(text, str)
            return _mark(text, passage, messages)
        parts = []
        for m in messages:
            if m["role"] == "system":
                parts.append(m["content"] + "\n\n")
            elif m["role"] == "user":
                parts.append(m["content"] + "\nAnswer:")
            else:
                parts.append(" " + m["content"] + "\n\n")
        if not messages or messages[-1]["role"] != "user":
            parts.append("Answer:")
        return _mark("".join(parts), passage, messages)

    def tokens(self, text: str) -> list[int]:
        """Ids of ``text`` with no special tokens added."""
        if not text:
            return []
        with self._lock:
            return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def encode(self, prompt: str) -> Encoded:
        """A prompt's token ids; a :class:`Prompt` is tokenised segment by segment.

        Tokenisers differ in where they split a blank line before the question
        (Qwen's merges ".\\n\\n", SmolLM2's keeps the last "\\n" with the next word), so
        the passage segment ends after or before its trailing white space, whichever
        gives the whole string's own ids; if neither does, after (the cached and the
        uncached path tokenise the same segments either way, so they still agree).
        A marked head is kept only where it splits the whole string's ids.
        """
        if not isinstance(prompt, Prompt):
            return Encoded(self.bos + self.tokens(prompt))
        text = str(prompt)
        if prompt.end == prompt.start:  # only the head marked
            whole = self.bos + self.tokens(text)
            head = self.bos + self.tokens(text[: prompt.start])
            ids = head + self.tokens(text[prompt.start :])
            return Encoded(ids, len(head), len(head)) if ids == whole else Encoded(whole)
        pid = prompt.passage_id
        passage_text = text[prompt.start : prompt.end]
        ends = [prompt.end]
        stripped = len(passage_text.rstrip())
        if 0 < stripped < len(passage_text):
            ends.append(prompt.start + stripped)
        whole = self.tokens(text)
        head = self.bos + self.tokens(text[: prompt.start])
        best: Encoded | None = None
        for end in ends:
            passage = self.tokens(text[prompt.start : end])
            ids = head + passage + self.tokens(text[end:])
            candidate = Encoded(ids, len(head), len(head) + len(passage), pid)
            if ids == self.bos + whole:
                return candidate
            best = best or candidate
        assert best is not None
        return best

    # ---------------------------------------------------------------- answers

    def encode_answer(self, text: str) -> list[int]:
        """Token ids of answer ``text`` as it continues a rendered prompt (no special tokens)."""
        return self.tokens(self.answer_prefix + text)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of answer token ids, special tokens dropped."""
        with self._lock:
            text = self.tokenizer.decode(list(ids), skip_special_tokens=True)
        return str(text).lstrip(" ")


class UsesTokenization:
    """The text side every generator backend shares, through its :class:`Tokenization`:
    what :class:`mixrag.rag.RAG` renders, encodes and decodes. A backend defines
    ``tokenization`` (the in-process one loads it lazily, the vLLM one at connection)."""

    @property
    def tokenization(self) -> Tokenization:
        raise NotImplementedError

    @property
    def eos_ids(self) -> tuple[int, ...]:
        """Token ids that end an answer: the model's EOS ids and chat end-of-turn markers."""
        return self.tokenization.eos_ids

    @property
    def end_id(self) -> int:
        """The token that ends an answer y when it is scored or trained on."""
        return self.tokenization.end_id

    def render(self, messages: Sequence[Message], passage: Passage | None = None) -> str:
        """The prompt string for chat ``messages`` (:meth:`Tokenization.render`)."""
        return self.tokenization.render(messages, passage)

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of a rendered prompt, exactly as scoring and decoding feed them."""
        return self.tokenization.encode(prompt).ids

    def encode_answer(self, text: str) -> list[int]:
        """Token ids of answer ``text`` as it continues a rendered prompt (no special tokens)."""
        return self.tokenization.encode_answer(text)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of answer token ids, special tokens dropped."""
        return self.tokenization.decode(ids)


def _mark(text: str, passage: Passage | None, messages: Sequence[Message]) -> str:
    if passage is not None:
        return Prompt.around(text, passage_segment(passage), passage.id or None)
    # no passage: everything before the last turn's content is the same for every
    # question (closed-book, concat), so it is marked as the head
    return Prompt.headed(text, messages[-1]["content"]) if messages else text
