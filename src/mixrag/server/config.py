"""ServerConfig: what ``mixrag serve`` serves, where, and the limits it enforces on requests."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from mixrag.answer import default_k
from mixrag.errors import MixragError
from mixrag.generator.vllm_client import VLLMConfig
from mixrag.ingest.loaders import supported_suffixes
from mixrag.rag import MODES
from mixrag.retriever.retriever import DEFAULT_METHOD, METHODS
from mixrag.server.chat.config import ChatConfig
from mixrag.server.mcp.config import McpConfig
from mixrag.support import DEFAULT_MIN_CONFIDENCE, DEFAULT_MIN_RELEVANCE, check_threshold

MiB = 2**20


def default_extensions() -> tuple[str, ...]:
    """Every suffix an ingest loader reads (``.gz`` versions of them are accepted too)."""
    return tuple(supported_suffixes())


@dataclass(frozen=True)
class ServerConfig:
    """One server: the index folder, the generator, the address, the request limits.

    index:              the index folder, or a ``postgresql://`` store (created empty if
                        missing, so documents can be uploaded into it).
    model:              generator: a bundled name, a model folder, or a training run
                        (its generator and query encoder); None = the default.
    host, port:         where uvicorn listens. Loopback by default; serving beyond it
                        without a ``token`` is allowed but logged as open.
    token:              the bearer token every ``/v1`` endpoint asks for; None = open API.
    max_question_chars: longest question accepted, in characters.
    max_k:              largest K a request may ask for (retrieval and the mixture).
    max_upload_bytes:   largest uploaded document, in bytes.
    max_new_tokens:     longest answer a request may ask for, in tokens.
    max_beams:          widest beam a request may ask for.
    max_waiting:        asks queued for the generator beyond the one running before new
                        ones are refused with 503.
    max_batch:          most asks answered together in one batch (those that waited
                        while the generator was busy, with the same mode, K and decoding).
    max_running:        batches decoding at once, their forward passes shared step by
                        step (continuous batching); 1 = one batch after another.
    mode, k, method:    defaults of requests that leave them out; k None: each mode's
                        measured best (``DEFAULT_K``: 5, concat 3), see :meth:`k_for`.
    beams:              default beam width of requests that give none; None: each mode's
                        (``DEFAULT_BEAMS``: RAG-Sequence 2, else 1; 1 with ``remote``).
                        1 trades RAG-Sequence's EM for throughput and peak memory.
    min_confidence:     default least p(y|x) of a supported answer (:mod:`mixrag.support`);
                        below it the chat content and the web page say "not found".
    min_relevance:      default least max_j d(z_j)ᵀq(x) of a supported answer (some
                        passage is about the question); None: not used.
    tau:                prior temperature: p_eta(z|x) = softmax(score / tau); None = a
                        training run's own (``model``), else ``DEFAULT_TAU``.
    bm25_weight:        w in the score d(z)ᵀq(x) + w · bm25n(x, z); None = a training
                        run's own, else ``DEFAULT_BM25_WEIGHT``.
    device, dtype:      where and in what precision the generator runs (GeneratorConfig).
    remote:             a vLLM server that runs the generator's forward passes
                        (``--generator-url``); ``model`` then names its tokeniser, and
                        device, dtype and passage_cache_mb do not apply. RAG-Token asks
                        are refused (the server gives no full next-token distribution).
    passage_cache_mb:   memory for the generator's passage KV cache (0: off).
    extensions:         file suffixes an upload may have (a subset of the loaders').
    shutdown_timeout:   seconds uvicorn waits for in-flight requests on shutdown.
    chat:               limits of the OpenAI-compatible chat API's conversations.
    mcp:                the MCP tools served at ``/mcp`` (behind ``token``), and by
                        ``mixrag mcp`` over stdio; None = no ``/mcp``.
    """

    index: Path | str
    model: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = field(default=None, repr=False)
    max_question_chars: int = 2000
    max_k: int = 20
    max_upload_bytes: int = 10 * MiB
    max_new_tokens: int = 64
    max_beams: int = 4
    max_waiting: int = 8
    max_batch: int = 8
    max_running: int = 4
    mode: str = "rag-sequence"
    k: int | None = None
    beams: int | None = None
    method: str = DEFAULT_METHOD
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    min_relevance: float | None = DEFAULT_MIN_RELEVANCE
    tau: float | None = None
    bm25_weight: float | None = None
    device: str = "cpu"
    dtype: str = "float32"
    passage_cache_mb: int = 2048
    remote: VLLMConfig | None = None
    extensions: tuple[str, ...] = field(default_factory=default_extensions)
    shutdown_timeout: int = 30
    chat: ChatConfig = field(default_factory=ChatConfig)
    mcp: McpConfig | None = field(default_factory=McpConfig)

    def __post_init__(self) -> None:
        positive = {
            "max_question_chars": self.max_question_chars,
            "max_k": self.max_k,
            "max_upload_bytes": self.max_upload_bytes,
            "max_new_tokens": self.max_new_tokens,
            "max_beams": self.max_beams,
            "max_batch": self.max_batch,
            "max_running": self.max_running,
        }
        for name, value in positive.items():
            if value < 1:
                raise MixragError(f"{name} must be >= 1, got {value}")
        if self.max_waiting < 0:
            raise MixragError(f"max_waiting must be >= 0, got {self.max_waiting}")
        if not 0 <= self.port <= 65535:
            raise MixragError(f"port must be in 0..65535, got {self.port}")
        if self.token is not None and not self.token.strip():
            raise MixragError("the token is empty; put a secret in the token file")
        if self.mode not in MODES:
            raise MixragError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.remote is not None and self.mode == "rag-token":
            raise MixragError(
                "mode 'rag-token' cannot be the default with a vLLM server as the generator "
                "(it needs every step's full next-token distribution); use rag-sequence"
            )
        if self.method not in METHODS:
            raise MixragError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        check_threshold(self.min_confidence, None, self.min_relevance)
        if self.tau is not None and not self.tau > 0:
            raise MixragError(f"tau must be > 0, got {self.tau}")
        if self.bm25_weight is not None and not self.bm25_weight >= 0:
            raise MixragError(f"bm25_weight must be >= 0, got {self.bm25_weight}")
        if self.k is not None and not 1 <= self.k <= self.max_k:
            raise MixragError(f"k must be in 1..max_k={self.max_k}, got {self.k}")
        if self.beams is not None and not 1 <= self.beams <= self.max_beams:
            raise MixragError(f"beams must be in 1..max_beams={self.max_beams}, got {self.beams}")
        if self.remote is not None and self.beams not in (None, 1):
            raise MixragError(
                f"beams {self.beams} cannot be the default with a vLLM server as the generator "
                "(it decodes greedily); leave it out or give 1"
            )
        unknown = sorted(set(self.extensions) - set(default_extensions()))
        if unknown:
            known = ", ".join(default_extensions())
            raise MixragError(f"no loader reads {', '.join(unknown)}; choose from {known}")

    def k_for(self, mode: str | None = None) -> int:
        """K of a request that gives none: ``k``, else the mode's default (``DEFAULT_K``),
        at most ``max_k``; ``mode`` None: the server's default mode (and for searches)."""
        return min(default_k(mode or self.mode, self.k), self.max_k)

    @property
    def is_open(self) -> bool:
        """True when the API answers without a token."""
        return self.token is None

    @property
    def is_loopback(self) -> bool:
        """True when only this machine can connect."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def read_token_file(path: Path) -> str:
    """The token in ``path`` (surrounding white space dropped), or a MixragError naming why not."""
    try:
        token = path.expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise MixragError(f"cannot read token file {path}: {e}") from None
    if not token:
        raise MixragError(f"token file {path} is empty")
    return token
