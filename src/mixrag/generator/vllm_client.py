"""HTTP to a vLLM server's OpenAI-compatible API: requests, bounded retries, one clear error.

Chosen: ``httpx`` (already installed with the MCP SDK; a connection pool shared by
threads, explicit timeouts) over the ``openai`` client, whose typed requests do not
carry vLLM's own fields (``prompt_logprobs``, ``return_tokens_as_token_ids``) without
``extra_body`` and which retries by itself in ways we could not bound or report.

Retried, with exponential backoff, at most ``retries`` times: timeouts, lost or refused
connections, and 5xx answers (429 too: a server shedding load). A 4xx other than 429 is
the request's fault and is reported at once with the server's message. After the last
try one :class:`GeneratorServerError` names the URL, the attempts and the last failure.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from mixrag.errors import MixragError

log = logging.getLogger(__name__)


class GeneratorServerError(MixragError):
    """The generator server could not answer (after the retries), or refused a request."""


@dataclass(frozen=True)
class VLLMConfig:
    """Where the generator runs when it is not in this process.

    url:          the server's OpenAI-compatible base, e.g. ``http://host:8000/v1``.
    api_key:      sent as ``Authorization: Bearer`` (``vllm serve --api-key``); None: none.
    served_model: the model name requests use (a LoRA adapter's name for a trained run);
                  None: the one model the server lists.
    timeout_s:    per request (connect and read).
    retries:      extra tries after a timeout, a lost connection or a 5xx/429.
    backoff_s:    the first retry's wait, doubled each time.
    concurrency:  requests in flight at once (the server batches them).
    """

    url: str
    api_key: str | None = None
    served_model: str | None = None
    timeout_s: float = 120.0
    retries: int = 4
    backoff_s: float = 0.5
    concurrency: int = 16

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise MixragError(
                f"generator url must start with http:// or https://, got {self.url!r}"
            )
        if self.retries < 0:
            raise MixragError(f"retries must be >= 0, got {self.retries}")
        if self.concurrency < 1:
            raise MixragError(f"concurrency must be >= 1, got {self.concurrency}")
        if not self.timeout_s > 0:
            raise MixragError(f"timeout_s must be > 0, got {self.timeout_s}")

    def to_dict(self) -> dict[str, Any]:
        """The config as saved in reports: the API key left out."""
        out = asdict(self)
        out["api_key"] = "<set>" if self.api_key else None
        return out


_RETRIED_STATUS = {429, 500, 502, 503, 504}


class VLLMClient:
    """Posts JSON to one server; thread-safe (one ``httpx.Client`` pool)."""

    def __init__(self, config: VLLMConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.base = config.url.rstrip("/")
        # /tokenize and /detokenize live at the server's root, beside /v1
        self.root = self.base[: -len("/v1")] if self.base.endswith("/v1") else self.base
        limits = httpx.Limits(max_connections=config.concurrency + 2)
        self._http = httpx.Client(
            headers=headers, timeout=config.timeout_s, limits=limits, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def get(self, path: str) -> Any:
        return self._send("GET", f"{self.base}{path}", None)

    def post(self, path: str, body: dict[str, Any], *, root: bool = False) -> Any:
        return self._send("POST", f"{self.root if root else self.base}{path}", body)

    def _send(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        cfg = self.config
        last = ""
        for attempt in range(cfg.retries + 1):
            if attempt:
                time.sleep(cfg.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._http.request(method, url, json=body)
            except httpx.TimeoutException as exc:
                last = f"timed out after {cfg.timeout_s:g} s ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last = f"connection failed: {exc or type(exc).__name__}"
            else:
                if response.status_code < 400:
                    return response.json()
                detail = _message(response)
                if response.status_code not in _RETRIED_STATUS:
                    raise GeneratorServerError(
                        f"{method} {url} was refused: HTTP {response.status_code}: {detail}"
                    )
                last = f"HTTP {response.status_code}: {detail}"
            log.warning("%s %s: %s (try %d of %d)", method, url, last, attempt + 1, cfg.retries + 1)
        raise GeneratorServerError(
            f"the generator server at {self.base} did not answer {method} {url} "
            f"after {cfg.retries + 1} tries: {last}"
        )


def _message(response: httpx.Response) -> str:
    """The error text of a server's answer: OpenAI's ``{"error": {"message"}}`` or the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and "message" in err:
            return str(err["message"])[:500]
        if "detail" in body:
            return str(body["detail"])[:500]
    return str(body)[:500]
