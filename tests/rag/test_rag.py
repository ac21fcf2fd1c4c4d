"""The RAG model end to end with the real bundled encoder and SmolLM2 on a tiny index."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from mixrag.answer import DEFAULT_BEAMS, DEFAULT_K
from mixrag.decoding import DecodingConfig, greedy, rag_token_greedy
from mixrag.echo import echoes_question
from mixrag.errors import MixragError
from mixrag.generator import TransformersGenerator
from mixrag.index.folder import Index
from mixrag.mixture import (
    rag_token_logprob,
    rag_token_posterior,
    sequence_logprobs,
    sequence_posterior,
    token_posterior,
)
from mixrag.rag import MODES, RAG, RAGConfig, passage_prompts
from tests.helpers import make_docs

QUESTION = "In which year was the Riverside Mill founded?"


@pytest.fixture(scope="module")
def rag(
    tmp_path_factory: pytest.TempPathFactory, encoder: object, smollm2: TransformersGenerator
) -> RAG:
    root = tmp_path_factory.mktemp("rag")
    index = Index.open(root / "idx", create=True, encoder=encoder)  # type: ignore[arg-type]
    index.add([make_docs(root / "docs")])
    return RAG(index.retriever(), smollm2, RAGConfig(k=3, max_new_tokens=12))


def mill_rank(answer: object) -> int:
    cites = answer.citations  # type: ignore[attr-defined]
    return next(c.hit.rank for c in cites if c.hit.passage.source.endswith("mill.md"))


@pytest.mark.parametrize("mode", ["rag-sequence", "rag-token"])
def test_answer_comes_from_the_passage_that_holds_it(rag: RAG, mode: str) -> None:
    a = rag.ask(QUESTION, mode=mode)
    assert "1901" in a.text
    best = max(a.citations, key=lambda c: c.posterior)
    assert best.hit.passage.source.endswith("mill.md")
    assert best.posterior > 0.9
    assert sum(c.prior for c in a.citations) == pytest.approx(1.0, abs=1e-5)
    assert sum(c.posterior for c in a.citations) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_reports_logprob_prior_and_posterior(rag: RAG, mode: str) -> None:
    a = rag.ask(QUESTION, mode=mode)
    assert a.mode == mode and a.text
    assert math.isfinite(a.logprob) and a.logprob < 0
    assert len(a.citations) == 3
    assert sum(c.posterior for c in a.citations) == pytest.approx(1.0, abs=1e-5)
    assert set(a.timings) >= {"retrieve", "decode", "score", "total"}
    d = a.to_dict()
    assert d["answer"] == a.text and len(d["passages"]) == 3
    if mode == "rag-token":
        assert len(a.token_posteriors) == len(a.token_ids)
        assert all(sum(t) == pytest.approx(1.0, abs=1e-5) for t in a.token_posteriors)


def test_score_matches_the_mixture_of_per_passage_terms(rag: RAG) -> None:
    seq = rag.score(QUESTION, "1901", mode="rag-sequence")
    terms = [math.log(c.prior) + c.logprob for c in seq.citations]  # type: ignore[operator]
    assert seq.logprob == pytest.approx(math.log(sum(math.exp(t) for t in terms)), abs=1e-4)
    posterior = [math.exp(t - seq.logprob) for t in terms]
    assert [c.posterior for c in seq.citations] == pytest.approx(posterior, abs=1e-4)
    assert mill_rank(seq) == max(seq.citations, key=lambda c: c.posterior).hit.rank


def test_score_over_given_hits_equals_score_over_its_own_retrieval(rag: RAG) -> None:
    wide = rag.retrieve([QUESTION], 3)  # cut to K = 2, priors renormalised over those 2
    given = rag.score_batch([QUESTION], ["1901"], mode="rag-token", k=2, hits=wide)[0]
    own = rag.score(QUESTION, "1901", mode="rag-token", k=2)
    assert [c.hit.passage.id for c in given.citations] == [c.hit.passage.id for c in own.citations]
    assert [c.prior for c in given.citations] == pytest.approx([c.prior for c in own.citations])
    assert given.logprob == pytest.approx(own.logprob, abs=1e-5)
    with pytest.raises(MixragError, match="1 questions but 2 hit lists"):
        rag.score_batch([QUESTION], ["1901"], hits=[wide[0], wide[0]])


def test_k1_reduces_to_the_plain_generator(rag: RAG) -> None:
    one = rag.score(QUESTION, "1901", mode="rag-sequence", k=1)
    c = one.citations[0]
    assert c.prior == pytest.approx(1.0) and c.posterior == pytest.approx(1.0)
    assert one.logprob == pytest.approx(c.logprob, abs=1e-5)
    tok = rag.score(QUESTION, "1901", mode="rag-token", k=1)
    assert tok.logprob == pytest.approx(one.logprob, abs=1e-4)


def test_rag_token_greedy_with_one_passage_is_plain_greedy(rag: RAG) -> None:
    hits = rag.retrieve([QUESTION], 1)
    prompt = passage_prompts(rag.generator, [QUESTION], hits, 1)
    cfg = DecodingConfig(max_new_tokens=10, num_beams=1)
    eos = rag.generator.eos_ids
    mixed = rag_token_greedy(rag.generator, prompt, torch.zeros(1, 1), cfg, eos_ids=eos)
    plain = greedy(rag.generator, [prompt[0][0]], cfg, eos_ids=eos)
    assert mixed[0].token_ids == plain[0].token_ids
    assert mixed[0].logprob == pytest.approx(plain[0].logprob, abs=1e-4)


def test_rag_token_account_from_decoding_equals_a_second_pass(rag: RAG) -> None:
    """ask reads an answer's token posteriors from greedy decoding; score runs the K
    prompts again: the same log-probs, posteriors and token posteriors (float32)."""
    hits = rag.retrieve([QUESTION], 3)
    prompts = passage_prompts(rag.generator, [QUESTION], hits, 3)
    prior = torch.log_softmax(torch.tensor([[0.0, -1.0, -2.0]]), dim=-1)
    cfg = DecodingConfig(max_new_tokens=8, num_beams=1)
    h = rag_token_greedy(rag.generator, prompts, prior, cfg, eos_ids=rag.generator.eos_ids)
    best = h[0].best
    again = rag.generator.logprobs(prompts, [list(best.token_ids)]).logprobs[0]  # [K, T]
    assert torch.tensor(best.passage_token_logprobs) == pytest.approx(again.float(), abs=1e-4)
    assert [sum(r) for r in best.passage_token_logprobs] == pytest.approx(
        list(best.passage_logprobs), abs=1e-4
    )

    asked = rag.ask(QUESTION, mode="rag-token")
    ids = list(asked.token_ids)
    hits2 = [[c.hit for c in asked.citations]]
    tl = rag.generator.logprobs(passage_prompts(rag.generator, [QUESTION], hits2, 3), [ids])
    per_token, mask = tl.logprobs.float(), tl.mask  # [1, K, T], [1, T]
    log_prior = torch.tensor([[math.log(c.prior) for c in asked.citations]])
    assert asked.logprob == pytest.approx(
        float(rag_token_logprob(log_prior, per_token, mask)[0]), abs=1e-4
    )
    assert [c.posterior for c in asked.citations] == pytest.approx(
        sequence_posterior(log_prior, sequence_logprobs(per_token, mask)[:, :, None], mask[:, :1])[
            0
        ].tolist(),
        abs=1e-4,
    )
    assert [c.token_share for c in asked.citations] == pytest.approx(
        rag_token_posterior(log_prior, per_token, mask)[0].tolist(), abs=1e-4
    )
    expected = token_posterior(log_prior, per_token, mask)[0].T  # [T, K]
    assert torch.tensor(asked.token_posteriors) == pytest.approx(expected, abs=1e-4)


def test_batch_equals_single(rag: RAG) -> None:
    qs = [QUESTION, "What did Nikola Tesla design?"]
    batch = rag.ask_batch(qs, mode="rag-sequence")
    for q, a in zip(qs, batch, strict=True):
        single = rag.ask(q, mode="rag-sequence")
        assert a.token_ids == single.token_ids
        assert a.logprob == pytest.approx(single.logprob, abs=1e-3)


def test_bad_input_names_the_value(rag: RAG) -> None:
    with pytest.raises(MixragError, match="mode must be one of"):
        rag.ask(QUESTION, mode="magic")
    with pytest.raises(MixragError, match="k must be >= 1"):
        rag.ask(QUESTION, k=0)
    with pytest.raises(MixragError, match="non-empty"):
        rag.score(QUESTION, "  ")


def test_each_mode_takes_its_own_k_unless_one_is_given(rag: RAG) -> None:
    """k None: concat reads DEFAULT_K["concat"] passages, the mixtures theirs; a mode
    chosen per call still gets its own, and a given k wins."""
    assert DEFAULT_K["concat"] < DEFAULT_K["rag-sequence"]
    assert RAGConfig().top_k == DEFAULT_K["rag-sequence"]
    assert RAGConfig(mode="concat").top_k == DEFAULT_K["concat"]
    assert RAGConfig(mode="concat", k=4).top_k == 4
    n = rag.retriever.index.store.counts()["passages"]
    by_mode = RAG(rag.retriever, rag.generator, RAGConfig(max_new_tokens=4))
    concat = by_mode.ask(QUESTION, mode="concat")
    assert len(concat.citations) == min(n, DEFAULT_K["concat"])
    sequence = by_mode.ask(QUESTION, mode="rag-sequence")
    assert len(sequence.citations) == min(n, DEFAULT_K["rag-sequence"])
    assert len(by_mode.ask(QUESTION, mode="concat", k=2).citations) == 2


def test_rag_sequence_searches_two_beams_a_passage_unless_told(
    rag: RAG, monkeypatch: pytest.MonkeyPatch
) -> None:
    """num_beams None: RAG-Sequence's measured default width (2), the other modes greedy;
    a given width wins, and it is the width decoding gets."""
    assert RAGConfig().beams == DEFAULT_BEAMS["rag-sequence"] == 2
    assert [RAGConfig(mode=m).beams for m in ("rag-token", "concat", "closed-book")] == [1, 1, 1]
    assert RAGConfig(num_beams=1).beams == 1 and RAGConfig(mode="concat", num_beams=3).beams == 3
    with pytest.raises(MixragError, match="num_beams must be >= 1, got 0"):
        RAGConfig(num_beams=0)
    import mixrag.rag

    widths: list[int] = []
    thorough = mixrag.rag.rag_sequence_thorough

    def spy(generator: object, prompts: object, log_prior: object, config: DecodingConfig, **kw):  # type: ignore[no-untyped-def]
        widths.append(config.num_beams)
        return thorough(generator, prompts, log_prior, config, **kw)

    monkeypatch.setattr(mixrag.rag, "rag_sequence_thorough", spy)
    cfg = RAGConfig(mode="rag-sequence", k=3, max_new_tokens=6)
    default = RAG(rag.retriever, rag.generator, cfg).ask(QUESTION)
    two = RAG(rag.retriever, rag.generator, RAGConfig(k=3, max_new_tokens=6, num_beams=2))
    assert default.token_ids == two.ask(QUESTION).token_ids
    RAG(rag.retriever, rag.generator, RAGConfig(k=3, max_new_tokens=6, num_beams=1)).ask(QUESTION)
    assert widths == [2, 2, 1]


def test_open_takes_k_all_as_every_passage(rag: RAG) -> None:
    index = rag.retriever.index
    n = index.store.counts()["passages"]
    opened = RAG.open(index, "smollm2-135m", RAGConfig(mode="rag-token"), k="all")
    assert opened.config.k == n and opened.config.mode == "rag-token"
    assert RAG.open(index, "smollm2-135m", k="2").config.k == 2
    with pytest.raises(MixragError, match="positive integer or 'all'"):
        RAG.open(index, "smollm2-135m", k="none")


def test_cli_ask_and_score_json(rag: RAG, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from mixrag.cli.main import app

    idx = str(rag.retriever.index.path)
    runner = CliRunner()
    opts = ["--index", idx, "--model", "smollm2-135m", "-k", "2"]
    res = runner.invoke(app, ["ask", QUESTION, *opts, "--json", "--alternatives", "1"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["mode"] == "rag-sequence" and len(out["passages"]) == 2
    assert len(out["alternatives"]) <= 1
    res = runner.invoke(
        app, ["score", QUESTION, "1901", "--index", idx, "--model", "smollm2-135m", "-k", "2"]
    )
    assert res.exit_code == 0, res.output
    assert "log p(y|x)" in res.output and "posterior" in res.output


def test_given_hits_and_skipped_posteriors(rag: RAG) -> None:
    from mixrag.cli.format import answer_text

    hits = rag.retrieve([QUESTION], 3)
    fresh = rag.ask_batch([QUESTION], mode="rag-sequence", k=2)[0]
    given = rag.ask_batch([QUESTION], mode="rag-sequence", k=2, hits=hits)[0]
    assert given.text == fresh.text and given.logprob == pytest.approx(fresh.logprob, abs=1e-5)
    assert [c.hit.rank for c in given.citations] == [1, 2]  # the first K of the given hits
    # the hits show the prior the mixture used, over those K (not over the 3 retrieved)
    shown = [c.hit.prior for c in given.citations]
    assert shown == pytest.approx([c.prior for c in given.citations], rel=1e-6)
    assert shown == pytest.approx([c.hit.prior for c in fresh.citations], rel=1e-6)
    full = rag.ask_batch([QUESTION], mode="concat", k=3, hits=hits)[0]
    bare = rag.ask_batch([QUESTION], mode="concat", k=3, hits=hits, posteriors=False)[0]
    assert bare.text == full.text and bare.logprob == pytest.approx(full.logprob, abs=1e-5)
    assert all(c.posterior is None and c.logprob is None for c in bare.citations)
    assert all(c.posterior is not None for c in full.citations)
    assert "–" in answer_text(bare)
    with pytest.raises(MixragError, match="2 hit lists"):
        rag.ask_batch([QUESTION], mode="concat", hits=hits * 2)


def test_every_mode_is_the_same_with_the_passage_cache_off_cold_and_warm(rag: RAG) -> None:
    import dataclasses

    from mixrag.generator import PassageCache

    gen = rag.generator

    def with_cache(cache: PassageCache | None, mb: int) -> RAG:
        config = dataclasses.replace(gen.config, passage_cache_mb=mb)
        g = TransformersGenerator(
            config, model=gen.model, tokenizer=gen.tokenizer, passage_cache=cache
        )
        return RAG(rag.retriever, g, rag.config)

    off, on = with_cache(None, 0), with_cache(PassageCache(), 64)
    questions = [QUESTION, "Who designed the bridge?"]
    for mode in MODES:
        ref = off.ask_batch(questions, mode=mode)
        for _run in ("cold", "warm"):
            got = on.ask_batch(questions, mode=mode)
            for a, r in zip(got, ref, strict=True):
                assert a.text == r.text and a.token_ids == r.token_ids
                assert a.logprob == pytest.approx(r.logprob, abs=1e-4)
                for c, d in zip(a.citations, r.citations, strict=True):
                    assert c.posterior == pytest.approx(d.posterior, abs=1e-4)
    stats = on.generator.passage_cache.stats()  # type: ignore[union-attr]
    assert stats.hits > 0 and stats.entries > 0


def test_support_gain_is_over_closed_book_and_the_cli_abstains(rag: RAG) -> None:
    from typer.testing import CliRunner

    from mixrag.cli.main import app
    from mixrag.support import NOT_FOUND

    answers = {m: rag.ask(QUESTION, mode=m) for m in MODES}
    for mode, a in answers.items():
        assert a.support is not None and math.isfinite(a.support.gain), mode
        assert a.support.probability == pytest.approx(a.probability)
        assert a.supported == (a.probability >= rag.config.min_confidence)
    assert answers["closed-book"].support.gain == 0.0  # type: ignore[union-attr]
    # the mill is fictional: only its passage makes "1901" likely
    seq = answers["rag-sequence"]
    assert "1901" in seq.text and seq.support.gain > 1.0  # type: ignore[union-attr]
    # the same gain, recomputed: log p(y|x) - log p(y|x, no passage) for the same tokens
    closed = rag.generator.render(rag.prompts.closed_book(QUESTION))
    lp = rag.generator.logprobs([[closed]], [list(seq.token_ids)]).sequence_logprobs()[0, 0]
    assert seq.support.gain == pytest.approx(seq.logprob - float(lp), abs=1e-3)  # type: ignore[union-attr]

    idx = str(rag.retriever.index.path)
    base = ["ask", QUESTION, "--index", idx, "--model", "smollm2-135m", "-k", "2"]
    res = CliRunner().invoke(app, [*base, "--min-confidence", "1.0", "--show-guess"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == f"answer (rag-sequence): {NOT_FOUND}"
    assert lines[1].startswith("best guess: ") and "1901" in lines[1]
    assert lines[2].startswith("not supported by the indexed documents (p = ")
    res = CliRunner().invoke(app, [*base, "--min-confidence", "0"])
    assert res.exit_code == 0, res.output
    assert "1901" in res.output.splitlines()[0] and NOT_FOUND not in res.output
    assert res.output.splitlines()[1].startswith("supported by [")


def test_alternatives_are_the_union_ranked_below_the_answer(
    rag: RAG, smollm2: TransformersGenerator
) -> None:
    from dataclasses import replace

    plain = rag.ask(QUESTION, mode="rag-sequence")
    wide = RAG(rag.retriever, smollm2, replace(rag.config, alternatives=4))
    a = wide.ask(QUESTION, mode="rag-sequence")
    # asking for more of the n-best changes neither the answer nor its probability
    assert plain.alternatives == ()
    assert a.text == plain.text and a.logprob == pytest.approx(plain.logprob, abs=1e-5)
    texts = [x.text for x in a.alternatives]
    assert texts, "the three passages' greedy answers differ: the union holds others"
    assert a.text not in texts and len(set(texts)) == len(texts) <= 4 and "" not in texts
    lps = [x.logprob for x in a.alternatives]
    assert lps == sorted(lps, reverse=True)
    # below the answer, unless it passed over an echo of the question (mixrag.echo)
    assert all(
        lp <= a.logprob + 1e-6 or echoes_question(t, QUESTION)
        for t, lp in zip(texts, lps, strict=True)
    )
    # thorough decoding scored each under every passage: log p_RAG-Sequence(y'|x) exactly
    for x in a.alternatives:
        again = wide.score(QUESTION, x.text, mode="rag-sequence")
        assert x.logprob == pytest.approx(again.logprob, abs=1e-3), x.text
    from mixrag.cli.format import answer_text

    shown = f"also considered: {texts[0]} (p = {a.alternatives[0].probability:.2g})"
    assert shown in answer_text(a, show_guess=True)
    d = a.to_dict()["alternatives"]
    assert [x["answer"] for x in d] == texts
    assert d[0]["probability"] == pytest.approx(math.exp(lps[0]))
    # greedy single-prompt decoding has one hypothesis: no alternatives
    assert wide.ask(QUESTION, mode="concat").alternatives == ()
    # a beam search's n-best below its answer
    beams = RAG(rag.retriever, smollm2, replace(rag.config, alternatives=2, num_beams=3))
    c = beams.ask(QUESTION, mode="concat")
    assert 0 < len(c.alternatives) <= 2 and all(x.logprob <= c.logprob for x in c.alternatives)
    with pytest.raises(MixragError, match="alternatives must be an integer >= 0, got -1"):
        RAGConfig(alternatives=-1)


def test_an_echo_of_the_question_gives_way_to_the_next_candidate(
    rag: RAG, smollm2: TransformersGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    import mixrag.echo

    wide = RAG(rag.retriever, smollm2, replace(rag.config, alternatives=4))
    first = wide.ask(QUESTION, mode="rag-sequence")
    assert first.alternatives, "the union holds other answers"
    # pretend the answer repeats the question: the next candidate answers, same p(y|x)
    monkeypatch.setattr(mixrag.echo, "echoes_question", lambda answer, q: answer == first.text)
    second = rag.ask(QUESTION, mode="rag-sequence")
    assert second.text == first.alternatives[0].text
    assert second.logprob == pytest.approx(first.alternatives[0].logprob, abs=1e-4)
    # --allow-echo keeps the likeliest
    allowed = RAG(rag.retriever, smollm2, replace(rag.config, allow_echo=True))
    assert allowed.ask(QUESTION, mode="rag-sequence").text == first.text
