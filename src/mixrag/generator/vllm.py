"""VLLMGenerator: p_phi(y | x, z) computed by a vLLM server, scored and generated remotely.

For users whose generator outgrows one process: ``vllm serve`` (tensor-parallel GPUs,
replicas behind one URL, vLLM on Ray) does the forward passes; mixrag keeps the
retriever, the mixture and the prompts. Measured against the in-process backend in
tests/generator/test_vllm.py and docs/BENCHMARKS.md.

* **Scoring** (:meth:`VLLMGenerator.logprobs`, the ``[B, K, T]`` protocol): one
  ``/v1/completions`` request per distinct (prompt, answer) cell with the prompt and
  answer sent as *token ids* (mixrag's tokenisation is the one scored) and vLLM's
  ``prompt_logprobs``: position i's entry is log p(token_i | tokens_<i), so the
  answer's first token is scored from the prompt's last position, as in process.
* **Generation** (:meth:`VLLMGenerator.generate`): greedy (temperature 0) with the
  sampled tokens' log-probs and ids (``return_tokens_as_token_ids``); the answer is
  cut by mixrag's own stop rule (an end token, or a newline), the token that stops it
  kept, as the in-process decoders do.
* **RAG-Token** needs the full next-token distribution of K prompts at every step;
  the server returns at most a few top log-probs, so it is refused
  (:data:`mixrag.decoding.remote.RAG_TOKEN_REFUSAL`), never approximated.
* **Checks** (:meth:`VLLMGenerator.check`): the served model exists, and the server's
  tokeniser gives a probe text the ids mixrag's gives and ends its vocabulary where
  mixrag's does; a mismatch names both.

Requests run concurrently (``VLLMConfig.concurrency`` threads); any request that still
fails after its retries fails the whole call: a partial answer is never returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import torch

from mixrag.decoding.base import StopReason
from mixrag.decoding.remote import Generation
from mixrag.errors import MixragError
from mixrag.generator.base import TokenLogprobs
from mixrag.generator.config import GeneratorConfig
from mixrag.generator.prompts import PromptFormat
from mixrag.generator.tokenization import Tokenization, UsesTokenization, find_eos_ids
from mixrag.generator.vllm_client import GeneratorServerError, VLLMClient, VLLMConfig

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# A text whose ids must be the same on both sides: words, digits, punctuation, white
# space runs, non-Latin scripts and a chat marker.
PROBE = (
    "The 1904 Summer Olympics in St. Louis (Missouri) — naïve café, 東京, \n\n  x=3.14;<|im_end|>"
)


class VLLMGenerator(UsesTokenization):
    """A :class:`~mixrag.generator.base.Generator` whose forward passes run on a vLLM
    server (module docstring); it also generates (:meth:`generate`), but is not a
    step generator."""

    def __init__(
        self,
        config: GeneratorConfig,
        remote: VLLMConfig,
        tokenization: Tokenization,
        client: VLLMClient | None = None,
    ) -> None:
        self.config = config
        self.remote = remote
        self._tokenization = tokenization
        self.client = client or VLLMClient(remote)
        self._pool = ThreadPoolExecutor(remote.concurrency, thread_name_prefix="mixrag-vllm")
        self._model_name: str | None = remote.served_model
        #: no KV is kept here: the server has its own prefix cache
        self.passage_cache = None
        self.kv_store = None

    @classmethod
    def open(
        cls, config: GeneratorConfig, remote: VLLMConfig, *, check: bool = True
    ) -> VLLMGenerator:
        """A generator for ``config.model``'s tokeniser on the server ``remote``.

        Only the tokeniser and the model's configuration are loaded here, never its
        weights. ``check`` runs :meth:`check` now.
        """
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        from mixrag.generator.models import ModelLoadError, resolve

        source, local_only = resolve(config.model, config.cache_dir)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
            model_config = AutoConfig.from_pretrained(source, local_files_only=local_only)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"could not load the tokeniser of {config.model!r}: {exc}"
            ) from exc
        try:
            generation = GenerationConfig.from_pretrained(source, local_files_only=local_only)
        except OSError:
            generation = None
        eos = find_eos_ids(tokenizer, model_config, generation)
        gen = cls(config, remote, Tokenization(tokenizer, eos))
        if check:
            gen.check()
        return gen

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    # ---------------------------------------------------------------- what RAG uses

    @property
    def prompt_format(self) -> PromptFormat:
        return self.config.prompt_format

    @property
    def tokenization(self) -> Tokenization:
        """The tokeniser of the served model, checked against the server's (:meth:`check`)."""
        return self._tokenization

    def describe(self) -> dict[str, Any]:
        """What reports record of this generator."""
        return {"backend": "vllm", "served_model": self.model_name, **self.remote.to_dict()}

    # ---------------------------------------------------------------- the server

    @property
    def model_name(self) -> str:
        """The model name requests use: ``served_model`` or the server's one base model."""
        if self._model_name is None:
            models = self._served()
            bases = [m["id"] for m in models if not m.get("parent")]
            if len(bases) != 1:
                raise MixragError(
                    f"the server at {self.remote.url} serves {[m['id'] for m in models]}: "
                    "name the one to use with --served-model"
                )
            self._model_name = str(bases[0])
        return self._model_name

    def _served(self) -> list[dict[str, Any]]:
        data = self.client.get("/models").get("data", [])
        return [m for m in data if isinstance(m, dict) and "id" in m]

    def check(self) -> None:
        """Refuse a server whose model is missing or whose tokeniser is not ours.

        Compares the ids of :data:`PROBE` and the text of our vocabulary's last id
        (vocabularies of different sizes or orders differ there), naming both sides.
        """
        names = [m["id"] for m in self._served()]
        if self.model_name not in names:
            raise MixragError(
                f"the server at {self.remote.url} does not serve {self.model_name!r} "
                f"(it serves {names})"
            )
        tok = self.tokenization
        ours = tok.tokens(PROBE)
        theirs = self.client.post(
            "/tokenize",
            {"model": self.model_name, "prompt": PROBE, "add_special_tokens": False},
            root=True,
        ).get("tokens")
        if theirs != ours:
            raise MixragError(
                f"the server's model {self.model_name!r} tokenises differently from "
                f"{self.config.model!r}: {PROBE!r} is {theirs} there and {ours} here; "
                "start the server with the same model (or pass --model the served one)"
            )
        last = len(tok.tokenizer) - 1
        here = tok.tokenizer.convert_ids_to_tokens(last)
        there = self.client.post(
            "/detokenize", {"model": self.model_name, "tokens": [last]}, root=True
        ).get("prompt")
        if there != tok.tokenizer.decode([last]):
            raise MixragError(
                f"the server's vocabulary differs from {self.config.model!r}'s "
                f"({len(tok.tokenizer)} tokens here, whose last is {here!r}; the server "
                f"decodes id {last} as {there!r})"
            )

    def _map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``fn`` over ``items`` on the request threads; the first failure is raised."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        return list(self._pool.map(fn, items))

    # ---------------------------------------------------------------- scoring

    def logprobs(
        self, prompts: Sequence[Sequence[str]], answers: Sequence[Sequence[int]]
    ) -> TokenLogprobs:
        """log p_phi(y_b,i | x_b, z_b,j, y_b,<i) as ``TokenLogprobs`` [B, K, T] (float32);
        0.0 on padded answer positions. One request per distinct (prompt, answer)."""
        b_count = len(prompts)
        if len(answers) != b_count:
            raise ValueError(f"got {b_count} prompt lists but {len(answers)} answers")
        k = len(prompts[0]) if b_count else 0
        if any(len(p) != k for p in prompts):
            raise ValueError(
                f"every question needs the same number of prompts; got {[len(p) for p in prompts]}"
            )
        t = max((len(a) for a in answers), default=0)
        mask = torch.zeros(b_count, t, dtype=torch.bool)
        for b, a in enumerate(answers):
            mask[b, : len(a)] = True
        out = torch.zeros(b_count, k, t, dtype=torch.float32)
        cells: dict[tuple[str, tuple[int, ...]], list[tuple[int, int]]] = {}
        for b in range(b_count):
            if answers[b]:
                for j in range(k):
                    cells.setdefault((prompts[b][j], tuple(answers[b])), []).append((b, j))
        keys = list(cells)
        for key, lps in zip(keys, self._map(self._score_one, keys), strict=True):
            for b, j in cells[key]:
                out[b, j, : len(lps)] = torch.tensor(lps, dtype=torch.float32)
        return TokenLogprobs(out, mask)

    def _score_one(self, cell: tuple[str, tuple[int, ...]]) -> list[float]:
        prompt, answer = cell
        ids = self.encode_prompt(prompt)
        body = {
            "model": self.model_name,
            "prompt": ids + list(answer),
            "max_tokens": 1,
            "temperature": 0.0,
            "prompt_logprobs": 0,
        }
        choice = _choice(self.client.post("/completions", body))
        entries = choice.get("prompt_logprobs")
        if not isinstance(entries, list) or len(entries) != len(ids) + len(answer):
            raise GeneratorServerError(
                f"the server returned no prompt log-probs for {len(ids) + len(answer)} tokens "
                f"(got {type(entries).__name__}); is it vLLM?"
            )
        return [
            _logprob_of(entries[len(ids) + i], tok, len(ids) + i) for i, tok in enumerate(answer)
        ]

    # ---------------------------------------------------------------- generation

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        stop: Callable[[Sequence[int]], bool] | None = None,
    ) -> list[Generation]:
        """Greedy answers to ``prompts``, cut by the stop rule: an end token (``eos_ids``)
        or ``stop(ids)`` true after a token, that token kept; else ``max_new_tokens``."""
        return self._map(lambda p: self._generate_one(p, max_new_tokens, stop), list(prompts))

    def _generate_one(
        self, prompt: str, max_new_tokens: int, stop: Callable[[Sequence[int]], bool] | None
    ) -> Generation:
        body: dict[str, Any] = {
            "model": self.model_name,
            "prompt": self.encode_prompt(prompt),
            "max_tokens": max_new_tokens,
            "temperature": 0.0,
            "logprobs": 0,
            "return_tokens_as_token_ids": True,
            "stop_token_ids": list(self.eos_ids),
            "skip_special_tokens": False,
            "include_stop_str_in_output": True,
        }
        if stop is not None:
            body["stop"] = ["\n"]
        choice = _choice(self.client.post("/completions", body))
        lp = choice.get("logprobs") or {}
        tokens = [_token_id(s) for s in lp.get("tokens") or []]
        values = [float(v) for v in lp.get("token_logprobs") or []]
        if len(tokens) != len(values):
            raise GeneratorServerError("the server's tokens and log-probs differ in length")
        eos = frozenset(self.eos_ids)
        for i, tok in enumerate(tokens):
            reason: StopReason | None = None
            if tok in eos:
                reason = "eos"
            elif stop is not None and stop(tokens[: i + 1]):
                reason = "stop"
            if reason is not None:
                return Generation(tuple(tokens[: i + 1]), tuple(values[: i + 1]), reason)
        if len(tokens) >= max_new_tokens:
            return Generation(
                tuple(tokens[:max_new_tokens]), tuple(values[:max_new_tokens]), "length"
            )
        raise GeneratorServerError(
            f"the server stopped after {len(tokens)} tokens ({choice.get('finish_reason')!r}) "
            "before an end token, a newline or the length limit: the answer would be partial"
        )


def _choice(response: Any) -> dict[str, Any]:
    choices = response.get("choices") if isinstance(response, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise GeneratorServerError(f"the server's answer has no choices: {str(response)[:300]}")
    return choices[0]


def _logprob_of(entry: Any, token: int, position: int) -> float:
    """The log-prob of ``token`` in one ``prompt_logprobs`` entry ({id: {"logprob": x}})."""
    value = entry.get(str(token)) if isinstance(entry, dict) else None
    if value is None:
        raise GeneratorServerError(
            f"the server's prompt log-probs lack token {token} at position {position}"
        )
    return float(value["logprob"] if isinstance(value, dict) else value)


def _token_id(text: str) -> int:
    """An id from ``return_tokens_as_token_ids``'s ``"token_id:123"``."""
    if not text.startswith("token_id:"):
        raise GeneratorServerError(
            f"the server returned token {text!r}, not an id: "
            "it must accept return_tokens_as_token_ids"
        )
    return int(text.removeprefix("token_id:"))
