"""The generator-server client without a server: retries, errors, parsing, remote decoding.

The HTTP side runs on ``httpx.MockTransport``; remote decoding on a fake server whose
answers and log-probs are fixed, so the mixture's ranking is checked by hand. The same
code against a real vLLM server: tests/generator/test_vllm.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import httpx
import pytest
import torch

from mixrag.answer import RAGConfig
from mixrag.decoding import DecodingConfig
from mixrag.decoding.remote import (
    Completer,
    Generation,
    decode_remote,
    remote_rag_sequence,
    remote_single,
)
from mixrag.errors import MixragError
from mixrag.generator.base import TokenLogprobs
from mixrag.generator.config import GeneratorConfig
from mixrag.generator.tokenization import Encoded, Tokenization
from mixrag.generator.vllm import VLLMGenerator
from mixrag.generator.vllm_client import GeneratorServerError, VLLMClient, VLLMConfig

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler, **kw: Any) -> VLLMClient:
    config = VLLMConfig("http://gen.test/v1", backoff_s=0.0, **kw)
    return VLLMClient(config, transport=httpx.MockTransport(handler))


# ---------------------------------------------------------------- the client


def test_5xx_and_lost_connections_are_retried_then_answered() -> None:
    failures: list[Exception | int] = [503, httpx.ConnectError("refused"), 502]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if failures:
            f = failures.pop(0)
            if isinstance(f, Exception):
                raise f
            return httpx.Response(f, json={"error": {"message": "busy"}})
        return httpx.Response(200, json={"ok": True})

    client = _client(handler, retries=3, api_key="s3cret")
    assert client.post("/completions", {"x": 1}) == {"ok": True}
    assert len(seen) == 4
    assert seen[-1].headers["authorization"] == "Bearer s3cret"
    assert json.loads(seen[-1].content) == {"x": 1}


def test_after_the_last_retry_one_error_names_the_server_and_the_failure() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ReadTimeout("slow")

    client = _client(handler, retries=2, timeout_s=5)
    with pytest.raises(GeneratorServerError, match=r"http://gen.test/v1.*after 3 tries.*timed out"):
        client.post("/completions", {})
    assert len(calls) == 3


def test_a_refused_request_is_reported_at_once_with_the_servers_message() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json={"error": {"message": "prompt is too long (9000 > 2048)"}})

    with pytest.raises(GeneratorServerError, match=r"HTTP 400: prompt is too long"):
        _client(handler, retries=4).post("/completions", {})
    assert len(calls) == 1


def test_tokenize_goes_to_the_servers_root_and_bad_settings_are_named() -> None:
    paths = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(200, json={})

    client = _client(handler)
    client.post("/tokenize", {}, root=True)
    client.get("/models")
    assert paths == ["/tokenize", "/v1/models"]
    with pytest.raises(MixragError, match=r"'gen\.test:8000'"):
        VLLMConfig("gen.test:8000")
    with pytest.raises(MixragError, match="concurrency must be >= 1, got 0"):
        VLLMConfig("http://gen.test/v1", concurrency=0)
    assert VLLMConfig("http://x/v1", api_key="k").to_dict()["api_key"] == "<set>"


# ---------------------------------------------------------------- the generator's parsing


class _Ids:
    """A tokenisation stand-in: a prompt's ids are its characters' codes."""

    eos_ids = (0,)
    end_id = 0

    def encode(self, prompt: str) -> Encoded:
        return Encoded([ord(c) for c in prompt])


def _generator(handler: Handler) -> VLLMGenerator:
    config = VLLMConfig("http://gen.test/v1", served_model="m", backoff_s=0.0, retries=1)
    client = VLLMClient(config, transport=httpx.MockTransport(handler))
    tok = cast(Tokenization, _Ids())
    return VLLMGenerator(GeneratorConfig(), config, tok, client=client)


def _completion(tokens: Sequence[int], lps: Sequence[float], finish: str) -> dict[str, Any]:
    logprobs = {"tokens": [f"token_id:{t}" for t in tokens], "token_logprobs": list(lps)}
    return {"choices": [{"logprobs": logprobs, "finish_reason": finish}]}


def test_generation_is_cut_by_the_stop_rule_and_a_partial_one_is_refused() -> None:
    answers = {
        "a": _completion([5, 10, 7, 8], [-0.1, -0.2, -0.3, -0.4], "stop"),  # 10 is "\n"
        "b": _completion([5, 0], [-0.5, -0.25], "stop"),
        "c": _completion([5, 6], [-1.0, -1.0], "length"),
        "d": _completion([5], [-1.0], "abort"),
    }
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        return httpx.Response(200, json=answers[chr(body["prompt"][0])])

    gen = _generator(handler)
    newline: Callable[[Sequence[int]], bool] = lambda ids: 10 in ids  # noqa: E731
    a, b, c = gen.generate(["a", "b", "c"], max_new_tokens=2, stop=newline)
    assert (a.token_ids, a.stop_reason, a.logprob) == ((5, 10), "stop", pytest.approx(-0.3))
    assert (b.token_ids, b.stop_reason) == ((5, 0), "eos")
    assert (c.token_ids, c.stop_reason, c.logprob) == ((5, 6), "length", -2.0)
    assert bodies[0]["stop_token_ids"] == [0] and bodies[0]["temperature"] == 0.0
    assert bodies[0]["prompt"] == [ord("a")]  # ids, not text: our tokenisation is scored
    with pytest.raises(GeneratorServerError, match=r"stopped after 1 tokens.*partial"):
        gen.generate(["d"], max_new_tokens=2, stop=newline)


def test_scoring_reads_the_answers_positions_of_the_prompt_logprobs() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["prompt"]
        # log p(token_i | tokens_<i) = -token_i / 100; the first position has none
        entries = [None] + [{str(t): {"logprob": -t / 100, "rank": 1}} for t in ids[1:]]
        return httpx.Response(200, json={"choices": [{"prompt_logprobs": entries}]})

    gen = _generator(handler)
    out = gen.logprobs([["ab", "xyz"], ["q", "q"]], [[3, 4], [9]])
    assert isinstance(out, TokenLogprobs) and out.logprobs.shape == (2, 2, 2)
    expected = torch.tensor([[[-0.03, -0.04]] * 2, [[-0.09, 0.0]] * 2])
    torch.testing.assert_close(out.logprobs, expected)
    assert out.mask.tolist() == [[True, True], [True, False]]


# ---------------------------------------------------------------- remote decoding


class _FakeServer:
    """Answers fixed per prompt; p_phi(y | prompt) from a fixed table of sequence log-probs."""

    def __init__(
        self, made: dict[str, tuple[int, ...]], table: dict[tuple[str, tuple[int, ...]], float]
    ) -> None:
        self.made, self.table = made, table
        self.generated: list[str] = []

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        stop: Callable[[Sequence[int]], bool] | None = None,
    ) -> list[Generation]:
        self.generated += prompts
        out = []
        for p in prompts:
            ids = self.made[p]
            lp = self.table[(p, ids)]
            out.append(Generation(ids, (lp, 0.0)[: len(ids)], "eos"))
        return out

    def logprobs(
        self, prompts: Sequence[Sequence[str]], answers: Sequence[Sequence[int]]
    ) -> TokenLogprobs:
        b, k = len(prompts), len(prompts[0])
        out = torch.zeros(b, k, 2)
        for i in range(b):
            for j in range(k):
                out[i, j, 0] = self.table[(prompts[i][j], tuple(answers[i]))]
        mask = torch.tensor([[True, len(a) > 1] for a in answers])
        return TokenLogprobs(out, mask)


def _server() -> _FakeServer:
    y1, y2 = (1, 0), (2, 0)
    made = {"p0": y1, "p1": y2, "p2": y2}
    table = {
        ("p0", y1): math.log(0.6), ("p1", y1): math.log(0.1), ("p2", y1): math.log(0.2),
        ("p0", y2): math.log(0.1), ("p1", y2): math.log(0.5), ("p2", y2): math.log(0.4),
    }  # fmt: skip
    return _FakeServer(made, table)


def test_rag_sequence_on_a_server_ranks_the_union_by_the_mixture_by_hand() -> None:
    server = _server()
    prior = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    cfg = DecodingConfig(max_new_tokens=4, num_beams=1, num_return=2)
    [thorough] = remote_rag_sequence(server, [["p0", "p1", "p2"]], prior, cfg, thorough=True)
    # p(y1|x) = .5*.6 + .3*.1 + .2*.2 = 0.37; p(y2|x) = .5*.1 + .3*.5 + .2*.4 = 0.28
    assert [h.token_ids for h in thorough.nbest] == [(1, 0), (2, 0)]
    assert thorough.best.logprob == pytest.approx(math.log(0.37), abs=1e-6)
    assert thorough.nbest[1].logprob == pytest.approx(math.log(0.28), abs=1e-6)
    assert thorough.best.passage_logprobs == pytest.approx([math.log(x) for x in (0.6, 0.1, 0.2)])
    [fast] = remote_rag_sequence(server, [["p0", "p1", "p2"]], prior, cfg, thorough=False)
    # fast: only the passages that produced y: y1 from p0 (.5*.6 = .30), y2 from p1, p2
    # (.3*.5 + .2*.4 = .23)
    assert fast.best.logprob == pytest.approx(math.log(0.30), abs=1e-6)
    assert fast.nbest[1].logprob == pytest.approx(math.log(0.23), abs=1e-6)
    assert fast.best.passage_logprobs[1:] == (None, None)


def test_padding_slots_are_not_generated_and_rag_token_or_beams_are_refused() -> None:
    server = _server()
    prior = torch.log(torch.tensor([[0.7, 0.3, 0.0]]))  # slot 2 is padding
    cfg = DecodingConfig(max_new_tokens=4, num_beams=1, num_return=1)
    [r] = remote_rag_sequence(server, [["p0", "p1", "p0"]], prior, cfg)
    assert server.generated == ["p0", "p1"]
    assert r.best.token_ids == (1, 0)
    [single] = remote_single(server, ["p1"], cfg)
    assert single.best.token_ids == (2, 0) and single.best.logprob == pytest.approx(math.log(0.5))
    assert isinstance(server, Completer)
    with pytest.raises(MixragError, match="rag-token is not available on a generator server"):
        decode_remote(server, RAGConfig(mode="rag-token"), [["p0"]], prior[:, :1], cfg)
    with pytest.raises(MixragError, match="num_beams=4"):
        remote_single(server, ["p1"], DecodingConfig(max_new_tokens=4, num_beams=4))
