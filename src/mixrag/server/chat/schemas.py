"""Bodies of the chat API: OpenAI's request and response objects, plus mixrag's fields.

A request names every parameter OpenAI's chat completions take, so a misspelt one is
a 400 naming it (as OpenAI answers); those mixrag cannot honour are accepted and
listed in the reply's ``mixrag.ignored`` (:data:`IGNORED`). ``k``, ``method``, ``beams``
and ``decoding`` are mixrag's own (an OpenAI client sends them with ``extra_body``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mixrag.server.schemas import AnswerOut, Decoding, Method

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]

#: accepted, without effect: answers are greedy or beam search (no sampling), end at their
#: first newline, and have no per-token log-probs, tools or structured output
IGNORED = (
    "temperature",
    "top_p",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "seed",
    "user",
    "tools",
    "functions",
    "function_call",
    "parallel_tool_calls",
    "metadata",
    "store",
    "reasoning_effort",
    "service_tier",
    "modalities",
    "prediction",
    "audio",
    "web_search_options",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "verbosity",
)


class ContentPart(BaseModel):
    """One part of a message's content; only ``text`` parts are read."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One turn. Other OpenAI fields (``name``, ``tool_calls``...) are accepted and unused."""

    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = Field(None, description="Send a usage chunk before [DONE].")


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``: the question is the last message, a user's."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        description="mixrag-rag-sequence, mixrag-rag-token, mixrag-concat, "
        "mixrag-closed-book, or mixrag (the server's default mode)."
    )
    messages: list[ChatMessage] = Field(description="The conversation; the last is the question.")
    stream: bool | None = Field(False, description="Stream chat.completion.chunk events.")
    stream_options: StreamOptions | None = None
    max_completion_tokens: int | None = Field(
        None, description="Answer length limit in tokens (capped at the server's)."
    )
    max_tokens: int | None = Field(None, description="Older name of max_completion_tokens.")
    n: int | None = Field(None, description="Number of choices: 1 only.")
    response_format: dict[str, Any] | None = Field(None, description='{"type": "text"} only.')
    tool_choice: str | dict[str, Any] | None = Field(None, description='"none" or "auto" only.')
    # mixrag's own (extra_body)
    k: int | None = Field(None, description="mixrag: passages in the mixture (K), 1..max_k.")
    method: Method | None = Field(None, description="mixrag: retrieval method.")
    beams: int | None = Field(
        None, description="mixrag: beam width (per passage); default 2 for RAG-Sequence, else 1."
    )
    decoding: Decoding | None = Field(None, description="mixrag: RAG-Sequence decoding.")
    min_confidence: float | None = Field(
        None,
        description="mixrag: least p(y|x) of a supported answer, 0..1; below it the "
        "content says 'Not found in the documents.' (the mixrag field keeps the guess).",
    )
    min_relevance: float | Literal["off"] | None = Field(
        None,
        description="mixrag: least relevance max_j d(z_j)·q(x) of a supported answer (some "
        'passage must be about the question); server default if left out, "off": no test.',
    )
    # OpenAI's, accepted without effect (IGNORED)
    temperature: Any = None
    top_p: Any = None
    stop: Any = None
    presence_penalty: Any = None
    frequency_penalty: Any = None
    logit_bias: Any = None
    logprobs: Any = None
    top_logprobs: Any = None
    seed: Any = None
    user: Any = None
    tools: Any = None
    functions: Any = None
    function_call: Any = None
    parallel_tool_calls: Any = None
    metadata: Any = None
    store: Any = None
    reasoning_effort: Any = None
    service_tier: Any = None
    modalities: Any = None
    prediction: Any = None
    audio: Any = None
    web_search_options: Any = None
    safety_identifier: Any = None
    prompt_cache_key: Any = None
    prompt_cache_retention: Any = None
    verbosity: Any = None

    def ignored(self) -> list[str]:
        """The parameters given that have no effect (:data:`IGNORED`), in that order."""
        given = self.model_fields_set
        return [name for name in IGNORED if name in given and getattr(self, name) is not None]


class ModelOut(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    mixrag: dict[str, str] = Field(description="The answering mode of the model.")


class ModelsOut(BaseModel):
    object: Literal["list"]
    data: list[ModelOut]


class MessageOut(BaseModel):
    role: Literal["assistant"]
    content: str = Field(description="The answer, then [n] for each cited passage (n = rank).")
    refusal: None = None


class ChoiceOut(BaseModel):
    index: int
    message: MessageOut
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class UsageOut(BaseModel):
    prompt_tokens: int = Field(description="Tokens of the question (the last user message).")
    completion_tokens: int = Field(description="Tokens of the answer.")
    total_tokens: int


class ExtensionOut(AnswerOut):
    """``/v1/ask``'s answer, plus how the chat request was read."""

    cited: list[int] = Field(description="Ranks of the cited passages, as the [n] markers.")
    retrieval_query: str = Field(description="What was searched for (see README).")
    k: int
    method: str
    ignored: list[str] = Field(description="Parameters given that had no effect.")


class ChatCompletionOut(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str = Field(description="The mode that answered, e.g. mixrag-rag-sequence.")
    system_fingerprint: str | None = None
    choices: list[ChoiceOut]
    usage: UsageOut
    mixrag: ExtensionOut


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str


class OpenAIErrorOut(BaseModel):
    error: ErrorDetail
