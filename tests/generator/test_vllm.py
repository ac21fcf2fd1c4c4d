"""The generator on a real vLLM server (the CPU build, tests/vllmserver.py) against the
in-process backend: the same [B, K, T] log-probs within 0.02 nats for both bundled
generators, the same answers and posteriors, the checks that refuse a wrong server.

vLLM runs from ``.venv-vllm`` (scripts/setup_vllm.sh; ``make test`` sets it up). In CI
a missing vLLM fails these tests; locally they skip.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from mixrag.answer import RAGConfig
from mixrag.errors import MixragError
from mixrag.eval.datasets import load_squad, sample
from mixrag.generator import GeneratorConfig, TransformersGenerator
from mixrag.generator.models import resolve
from mixrag.generator.vllm import VLLMGenerator
from mixrag.generator.vllm_client import VLLMConfig
from mixrag.rag import RAG
from tests.generator.helpers import PASSAGES, QUESTIONS
from tests.helpers import DEMO_SQUAD
from tests.vllmserver import local_vllm, vllm_python

pytestmark = pytest.mark.slow  # starts a server process and loads real models

TOLERANCE = 0.02  # nats: the bound; measured figures in docs/BENCHMARKS.md
N_QUESTIONS = 20
K = 3  # a server scores every answer under the passages that did not produce it, in full


@pytest.fixture(scope="module", params=["smollm2-135m", "qwen2.5-0.5b"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[TransformersGenerator, str]]:
    """(the in-process generator, the URL of a vLLM server serving the same weights)."""
    if vllm_python() is None:
        message = "vLLM is not installed: run scripts/setup_vllm.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    name = request.param
    gen = request.getfixturevalue("smollm2" if name == "smollm2-135m" else "qwen")
    folder, _ = resolve(name)
    with local_vllm(folder, name) as url:
        yield gen, url


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory, encoder):  # type: ignore[no-untyped-def]
    """The demo corpus (6 SQuAD dev articles) indexed once for this module."""
    from mixrag.index.folder import Index

    index = Index.open(tmp_path_factory.mktemp("demo") / "idx", create=True, encoder=encoder)
    index.add([DEMO_SQUAD])
    yield index
    index.close()


def _remote(gen: TransformersGenerator, url: str) -> VLLMGenerator:
    return VLLMGenerator.open(gen.config, VLLMConfig(url, concurrency=4))


def test_logprobs_equal_the_in_process_ones(served: tuple[TransformersGenerator, str]) -> None:
    gen, url = served
    remote = _remote(gen, url)
    fmt = gen.config.prompt_format
    prompts = [[gen.render(fmt.passage(q, p), passage=p) for p in PASSAGES] for q in QUESTIONS]
    answers = [[*gen.encode_answer("Paris"), gen.end_id], gen.encode_answer("in 1961")]
    ours = gen.logprobs(prompts, answers)
    theirs = remote.logprobs(prompts, answers)
    assert torch.equal(theirs.mask, ours.mask)
    gap = (theirs.logprobs - ours.logprobs).abs().max().item()
    assert gap <= TOLERANCE, f"max |Δ log p| = {gap:.4f} nats"
    # and a closed-book prompt (the support pass scores every answer so)
    closed = [[gen.render(fmt.closed_book(q))] for q in QUESTIONS]
    gap = remote.logprobs(closed, answers).logprobs - gen.logprobs(closed, answers).logprobs
    assert gap.abs().max().item() <= TOLERANCE
    remote.close()


def test_rag_sequence_answers_and_posteriors_equal_in_process(
    served: tuple[TransformersGenerator, str], demo_index
) -> None:  # type: ignore[no-untyped-def]
    gen, url = served
    if gen.config.model != "smollm2-135m":
        pytest.skip("20 questions on the small model; the 0.5B one is compared above")
    index = demo_index
    questions = [q.question for q in sample(load_squad(DEMO_SQUAD), N_QUESTIONS, seed=3)]
    remote = _remote(gen, url)
    config = RAGConfig(mode="rag-sequence", k=K)
    # the default width is 1 on a generator server (it decodes greedily), 2 in process
    local_rag = RAG(index.retriever(), gen, RAGConfig(mode="rag-sequence", k=K, num_beams=1))
    remote_rag = RAG(index.retriever(), remote, config)
    assert remote_rag.beams(config) == 1 and local_rag.beams(config) == 2
    ours = local_rag.ask_batch(questions)
    theirs = remote_rag.ask_batch(questions)
    assert [a.text for a in theirs] == [a.text for a in ours]
    for a, b in zip(theirs, ours, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=5 * TOLERANCE)
        assert [c.hit.passage.id for c in a.citations] == [c.hit.passage.id for c in b.citations]
        for ca, cb in zip(a.citations, b.citations, strict=True):
            assert ca.posterior == pytest.approx(cb.posterior, abs=TOLERANCE)
    # the plain modes decode on the server too, and RAG-Token is refused
    for mode in ("concat", "closed-book"):
        cfg = RAGConfig(mode=mode, k=3)
        mine = RAG(index.retriever(), gen, cfg).ask_batch(questions[:5])
        served_answers = RAG(index.retriever(), remote, cfg).ask_batch(questions[:5])
        assert [a.text for a in served_answers] == [a.text for a in mine], mode
    with pytest.raises(MixragError, match="rag-token is not available on a generator server"):
        remote_rag.ask(questions[0], mode="rag-token")
    remote.close()


def test_the_http_server_answers_through_vllm(
    served: tuple[TransformersGenerator, str], demo_index
) -> None:  # type: ignore[no-untyped-def]
    """``mixrag serve --generator-url``: /v1/ask (plain and streamed) gives the in-process
    answers, RAG-Token asks are refused with the reason, /v1/info names the server."""
    gen, url = served
    if gen.config.model != "smollm2-135m":
        pytest.skip("once, on the small model")
    from fastapi.testclient import TestClient

    from mixrag.server import ServerConfig, create_app
    from tests.server.helpers import sse_events

    questions = [q.question for q in sample(load_squad(DEMO_SQUAD), 3, seed=3)]
    greedy = RAGConfig(mode="rag-sequence", k=K, num_beams=1)  # the server's default width
    answers = RAG(demo_index.retriever(), gen, greedy).ask_batch(questions)
    config = ServerConfig(
        index=demo_index.path, model="smollm2-135m", remote=VLLMConfig(url), mcp=None
    )
    with TestClient(create_app(config)) as client:
        for question, answer in zip(questions, answers, strict=True):
            body = {"question": question, "mode": "rag-sequence", "k": K}
            got = client.post("/v1/ask", json=body)
            assert got.status_code == 200, got.text
            assert got.json()["answer"] == answer.text
        streamed = client.post("/v1/ask", json=body, headers={"Accept": "text/event-stream"})
        events = sse_events(streamed.text)
        assert events[-1][0] == "answer" and events[-1][1]["answer"] == answers[-1].text
        refused = client.post("/v1/ask", json={**body, "mode": "rag-token"})
        assert refused.status_code == 400 and "vLLM server" in refused.json()["detail"]
        info = client.get("/v1/info").json()["generator"]
        assert info["engine"] is None and info["server"]["url"] == url
    with pytest.raises(MixragError, match="rag-token"):
        ServerConfig(index=demo_index.path, mode="rag-token", remote=VLLMConfig(url))


def test_mcp_over_stdio_answers_through_vllm(
    served: tuple[TransformersGenerator, str], demo_index
) -> None:  # type: ignore[no-untyped-def]
    """``mixrag mcp --generator-url``: the ask tool gives the in-process answer; a RAG-Token
    ask is a tool error that names why, and the process lives on."""
    gen, url = served
    if gen.config.model != "smollm2-135m":
        pytest.skip("once, on the small model")
    from tests.server.mcp_client import Session, server_params

    question = "Which NFL team won Super Bowl 50?"
    greedy = RAGConfig(mode="rag-sequence", k=3, num_beams=1)  # the server's default width
    expected = RAG(demo_index.retriever(), gen, greedy).ask(question)
    session = Session(server_params(demo_index.path, "--read-only", "--generator-url", url))
    session.open()
    try:
        answer = session.run("call_tool", "ask", {"question": question, "mode": "rag-sequence"})
        assert not answer.is_error, answer.content
        assert answer.structured_content["answer"] == expected.text
        refused = session.run("call_tool", "ask", {"question": question, "mode": "rag-token"})
        assert refused.is_error and "rag-token" in refused.content[0].text
        assert not session.run("call_tool", "list_documents", {}).is_error
        assert not session.transport_errors
    finally:
        session.close()


def test_the_command_line_answers_through_the_server(
    served: tuple[TransformersGenerator, str], demo_index
) -> None:  # type: ignore[no-untyped-def]
    gen, url = served
    if gen.config.model != "smollm2-135m":
        pytest.skip("once, on the small model")
    from typer.testing import CliRunner

    from mixrag.cli.main import app

    question = "Which NFL team won Super Bowl 50?"
    where = ["--index", str(demo_index.path), "--model", "smollm2-135m", "-k", "3"]
    served_args = ["--generator-url", url, "--json", "--min-confidence", "0"]
    result = CliRunner().invoke(app, ["ask", question, *where, *served_args])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    expected = RAG(demo_index.retriever(), gen, RAGConfig(k=3, num_beams=1)).ask(question)
    assert answer["answer"] == expected.text
    assert answer["logprob"] == pytest.approx(expected.logprob, abs=5 * TOLERANCE)
    refused = CliRunner().invoke(app, ["ask", question, *where, *served_args, "-m", "rag-token"])
    assert refused.exit_code != 0
    assert "rag-token is not available" in refused.output + str(refused.exception)
    missing = url[:-3] + "/nope"  # no OpenAI API there: a 404, reported at once
    wrong = CliRunner().invoke(app, ["ask", question, *where, "--generator-url", missing])
    assert wrong.exit_code != 0 and "HTTP 404" in wrong.output + str(wrong.exception)


def test_a_server_with_another_tokeniser_or_model_name_is_refused(
    served: tuple[TransformersGenerator, str],
) -> None:
    gen, url = served
    other = "qwen2.5-0.5b" if gen.config.model == "smollm2-135m" else "smollm2-135m"
    with pytest.raises(MixragError, match=rf"tokenises differently from '{other}'"):
        VLLMGenerator.open(GeneratorConfig(model=other), VLLMConfig(url))
    with pytest.raises(MixragError, match=r"does not serve 'nope'"):
        VLLMGenerator.open(gen.config, VLLMConfig(url, served_model="nope"))


def test_a_lora_run_is_served_by_vllms_lora_support(tiny_index, tiny_squad, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``mixrag train`` (LoRA) → ``vllm serve --enable-lora`` with the flags mixrag
    names → ``mixrag ask --model RUN --generator-url``: the adapters are applied (the
    log-probs are the merged model's, and far from the base model's), the run's q(x)
    retrieves, and a server without the adapters is refused with the flags."""
    if vllm_python() is None:
        message = "vLLM is not installed: run scripts/setup_vllm.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from typer.testing import CliRunner

    from mixrag.cli.main import app
    from mixrag.eval.datasets import load_dataset
    from mixrag.runs import lora_flags, remote_generator
    from mixrag.train import TrainConfig, read_checkpoint
    from mixrag.train.checkpoint import checkpoint_path
    from mixrag.train.trainer import Trainer

    examples = load_dataset(tiny_squad).questions
    run = tmp_path / "run"
    # a large step, so that the adapters move the log-probs well past the tolerance
    config = TrainConfig(k=2, batch_size=2, grad_accum=1, lr=1e-2, warmup_steps=0, max_steps=2)
    Trainer(tiny_index, config, run, model="smollm2-135m").train(examples)
    ck = read_checkpoint(checkpoint_path(run))
    base_model, adapters = ck.served_generator()
    assert base_model == "smollm2-135m" and adapters == str(ck.path / "generator")

    folder, _ = resolve("smollm2-135m")
    flags = lora_flags(adapters, name="trained").split()
    assert flags == [
        "--enable-lora", "--lora-modules", f"trained={adapters}", "--max-lora-rank", "16",
        "--max-num-seqs", "1",
    ]  # fmt: skip
    with local_vllm(folder, "smollm2-135m", extra=flags) as url:
        remote = remote_generator(ck.served_generator(), VLLMConfig(url), ck.generator_config)
        assert remote.model_name == "trained"  # found by the adapters' folder
        merged = ck.load_generator()
        base = TransformersGenerator(GeneratorConfig(model="smollm2-135m"))
        fmt = merged.config.prompt_format
        prompts = [
            [merged.render(fmt.passage(q, p), passage=p) for p in PASSAGES] for q in QUESTIONS
        ]
        answers = [[*merged.encode_answer("Paris"), merged.end_id], merged.encode_answer("1961")]
        ours = merged.logprobs(prompts, answers)
        theirs = remote.logprobs(prompts, answers)
        real = ours.mask[:, None, :].expand_as(ours.logprobs)
        gap = (theirs.logprobs - ours.logprobs)[real].abs().max().item()
        assert gap <= TOLERANCE, f"max |Δ log p| = {gap:.4f} nats against the merged run"
        moved = (base.logprobs(prompts, answers).logprobs - ours.logprobs)[real].abs().max()
        assert moved.item() > 10 * TOLERANCE  # the adapters are not a no-op
        remote.close()

        question = examples[0].question
        args = ["ask", question, "--index", str(tiny_index.path), "--model", str(run)]
        args += ["-k", "2", "--json", "--min-confidence", "0", "--generator-url", url]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        answer = json.loads(result.output)
        greedy = RAGConfig(k=2, num_beams=1)  # the server decodes greedily
        expected = RAG.open(tiny_index, model=str(run), config=greedy).ask(question)
        assert answer["answer"] == expected.text
        assert answer["logprob"] == pytest.approx(expected.logprob, abs=5 * TOLERANCE)
        cited = [c["passage"]["id"] for c in answer["passages"]]
        assert cited == [c.hit.passage.id for c in expected.citations]  # the run's q(x)

        other = str(tmp_path / "another-run" / "generator")
        with pytest.raises(MixragError, match=r"--enable-lora --lora-modules run=\S*another-run"):
            remote_generator(("smollm2-135m", other), VLLMConfig(url))
