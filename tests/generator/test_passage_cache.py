"""The passage KV cache: exact reuse, keyed by the weights, bounded by bytes.

References: the same generator with the cache off (``passage_cache_mb=0``), which runs
every prompt's passage again, and an unpadded full forward pass.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from mixrag.decoding import DecodingConfig, rag_sequence_thorough, rag_token_greedy
from mixrag.generator import PassageCache, Prompt, TransformersGenerator
from mixrag.generator.passage_cache import entry_key, weights_hash
from mixrag.generator.prompts import PromptFormat
from tests.generator.helpers import PASSAGES, QUESTIONS, full_forward

ATOL = 1e-4


def _with_cache(gen: TransformersGenerator, cache: PassageCache | None = None, **kw: object):  # type: ignore[no-untyped-def]
    config = dataclasses.replace(gen.config, **kw)  # type: ignore[arg-type]
    return TransformersGenerator(
        config, model=gen.model, tokenizer=gen.tokenizer, passage_cache=cache
    )


def _prompts(gen: TransformersGenerator, questions: list[str] = QUESTIONS) -> list[list[str]]:
    fmt = PromptFormat(few_shot=True)
    return [[gen.render(fmt.passage(q, p), passage=p) for p in PASSAGES] for q in questions]


def _answers(gen: TransformersGenerator) -> list[list[int]]:
    return [[*gen.encode_answer("Paris"), gen.eos_ids[-1]], gen.encode_answer("in 1961 and 1962")]


# ---------------------------------------------------------------- no model


def test_lru_is_bounded_by_bytes() -> None:
    block = torch.zeros(2, 2, 1, 10, 4)  # 640 bytes in float32
    size = block.numel() * 4
    cache = PassageCache(max_bytes=3 * size)
    for i in range(3):
        cache.put(f"k{i}", block.clone())
    assert cache.get("k0") is not None  # k0 is now the most recently used
    cache.put("k3", block.clone())  # evicts k1, the least recently used
    assert "k1" not in cache and all(k in cache for k in ("k0", "k2", "k3"))
    stats = cache.stats()
    assert stats.bytes == 3 * size <= stats.max_bytes and stats.evictions == 1
    cache.put("huge", torch.zeros(8, 2, 1, 10, 4))  # larger than the budget: not kept
    assert "huge" not in cache and cache.stats().bytes <= cache.max_bytes
    assert cache.discard(["k0", "nope"]) == 1 and len(cache) == 2
    off = PassageCache(max_bytes=0)
    off.put("a", block)
    assert off.get("a") is None and off.stats().misses == 1
    with pytest.raises(ValueError, match="max_bytes must be >= 0"):
        PassageCache(-1)


def test_keys_name_weights_head_and_passage() -> None:
    base = entry_key("w1", [1, 2, 3], [4, 5])
    assert base == entry_key("w1", [1, 2, 3], [4, 5])
    assert base != entry_key("w2", [1, 2, 3], [4, 5])  # other weights
    assert base != entry_key("w1", [1, 2], [3, 4, 5])  # same tokens, other split
    assert base != entry_key("w1", [1, 2, 3], [4, 6])  # other passage


def test_prompt_marks_its_passage() -> None:
    text = "head Title: A\nbody\n\nQuestion: q?"
    p = Prompt.around(text, "Title: A\nbody\n\n")
    assert isinstance(p, Prompt) and p == text and hash(p) == hash(text)
    assert p.segments == ("head ", "Title: A\nbody\n\n", "Question: q?")
    assert Prompt.around(text, "absent") == text and not isinstance(
        Prompt.around(text, "absent"), Prompt
    )
    import pickle

    again = pickle.loads(pickle.dumps(p))
    assert isinstance(again, Prompt) and again.segments == p.segments
    with pytest.raises(ValueError, match="not inside a prompt"):
        Prompt("abc", 2, 9)


def test_leading_marks_the_start_of_the_last_turn() -> None:
    text = "head [1] A\n\n[2] B\n\nQuestion: q?<end>"
    content = "[1] A\n\n[2] B\n\nQuestion: q?"
    p = Prompt.leading(text, content, "[1] A\n\n", "a")
    assert isinstance(p, Prompt) and p.passage_id == "a"
    assert p.segments == ("head ", "[1] A\n\n", "[2] B\n\nQuestion: q?<end>")
    # a lead that the turn does not start with, or a turn not in the text: unmarked
    assert not isinstance(Prompt.leading(text, content, "[1] B\n\n"), Prompt)
    assert not isinstance(Prompt.leading(text, "absent", "[1] A\n\n"), Prompt)


def _concat_prompts(gen: TransformersGenerator) -> list[str]:
    from mixrag.generator.prompts import mark_concat

    fmt = PromptFormat(few_shot=True)
    out = []
    for q in QUESTIONS:
        for ps in (PASSAGES, PASSAGES[1:2]):  # K passages, and one
            messages = fmt.concat(q, ps)
            out.append(mark_concat(gen.render(messages), messages, ps))
    return out


def _check_concat_prompts(gen: TransformersGenerator) -> None:
    """A concat prompt's first passage is its cached segment, tokenised as the whole
    string is, and its log-probs equal the uncached ones, cold and warm."""
    prompts = _concat_prompts(gen)
    for p in prompts:
        assert isinstance(p, Prompt) and p.segments[1].startswith("[1] Title: ")
        assert gen.encode_prompt(p) == gen.encode_prompt(str(p))
    rows = [[p] for p in prompts]
    answers = [gen.encode_answer("Paris")] * len(rows)
    ref = _with_cache(gen, passage_cache_mb=0).logprobs(rows, answers).logprobs
    cache = PassageCache()
    on = _with_cache(gen, cache)
    cold = on.logprobs(rows, answers).logprobs
    warm = on.logprobs(rows, answers).logprobs
    stats = cache.stats()  # two distinct first passages: each computed once, then read
    assert stats.misses == 2 and stats.hits >= 2
    torch.testing.assert_close(cold, ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(warm, ref, atol=ATOL, rtol=0)


# ---------------------------------------------------------------- SmolLM2


@pytest.mark.slow
def test_concat_caches_its_first_passage(smollm2: TransformersGenerator) -> None:
    _check_concat_prompts(smollm2)


@pytest.mark.slow
def test_segmented_tokens_are_the_whole_string_tokens(smollm2: TransformersGenerator) -> None:
    for row in _prompts(smollm2):
        for prompt in row:
            assert isinstance(prompt, Prompt)
            whole = smollm2.encode_prompt(str(prompt))
            assert smollm2.encode_prompt(prompt) == whole


@pytest.mark.slow
def test_cached_logprobs_equal_uncached_cold_and_warm(smollm2: TransformersGenerator) -> None:
    prompts, answers = _prompts(smollm2), _answers(smollm2)
    off = _with_cache(smollm2, passage_cache_mb=0)
    assert off.passage_cache is None
    ref = off.logprobs(prompts, answers).logprobs
    cache = PassageCache()
    on = _with_cache(smollm2, cache)
    cold = on.logprobs(prompts, answers).logprobs
    assert cache.stats().misses == len(PASSAGES) and len(cache) == len(PASSAGES)
    warm = on.logprobs(prompts[::-1], answers[::-1]).logprobs.flip(0)
    assert cache.stats().hits == len(PASSAGES)  # the second call computed no passage
    torch.testing.assert_close(cold, ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(warm, ref, atol=ATOL, rtol=0)
    # and the unpadded full-vocabulary reference for one cell per question
    for b in range(2):
        full = full_forward(smollm2, prompts[b][1], answers[b])
        torch.testing.assert_close(warm[b, 1, : len(answers[b])], full, atol=ATOL, rtol=0)
    # grouped rescoring (one prompt, many answers) and tiny chunks read the same entries
    tiny = _with_cache(smollm2, cache, max_batch_tokens=60, max_batch_rows=2)
    many = [answers[0], answers[1], [smollm2.eos_ids[-1]]]
    got = tiny.logprobs([prompts[1]] * 3, many).logprobs
    torch.testing.assert_close(
        got, off.logprobs([prompts[1]] * 3, many).logprobs, atol=ATOL, rtol=0
    )


@pytest.mark.slow
def test_decoding_with_the_cache_equals_without(smollm2: TransformersGenerator) -> None:
    prompts = _prompts(smollm2)
    log_prior = torch.log_softmax(torch.tensor([[1.0, 0.5, -1.0], [0.2, 1.5, 0.0]]), dim=1)
    cfg = DecodingConfig(max_new_tokens=6, num_beams=2, num_return=2)
    off = _with_cache(smollm2, passage_cache_mb=0)
    on = _with_cache(smollm2, PassageCache())
    eos = smollm2.eos_ids
    for decode in (rag_sequence_thorough, rag_token_greedy):
        ref = decode(off, prompts, log_prior, cfg, eos_ids=eos)
        for _ in ("cold", "warm"):
            got = decode(on, prompts, log_prior, cfg, eos_ids=eos)
            for r, g in zip(ref, got, strict=True):
                assert [h.token_ids for h in g.nbest] == [h.token_ids for h in r.nbest]
                for hg, hr in zip(g.nbest, r.nbest, strict=True):
                    assert hg.logprob == pytest.approx(hr.logprob, abs=ATOL)
    # the decode state after the prompts equals one full forward per prompt
    state = on.start(prompts[0])
    for row, prompt in enumerate(prompts[0]):
        ids = torch.tensor([smollm2.encode_prompt(prompt)])
        with torch.inference_mode():
            full = smollm2.model(ids).logits[0, -1].float().log_softmax(-1)
        torch.testing.assert_close(state.logprobs()[row], full, atol=ATOL, rtol=0)


@pytest.mark.slow
def test_thorough_scores_equal_scoring_each_answer_under_each_passage(
    smollm2: TransformersGenerator,
) -> None:
    # The prefix-tree search scores every hypothesis under all K passages as it grows;
    # the reference scores each finished answer again under each passage, uncached.
    prompts = _prompts(smollm2)
    log_prior = torch.log_softmax(torch.tensor([[1.0, 0.5, -1.0], [0.2, 1.5, 0.0]]), dim=1)
    cfg = DecodingConfig(max_new_tokens=6, num_beams=2, num_return=4)
    on = _with_cache(smollm2, PassageCache())
    off = _with_cache(smollm2, passage_cache_mb=0)
    results = rag_sequence_thorough(on, prompts, log_prior, cfg, eos_ids=smollm2.eos_ids)
    for b, result in enumerate(results):
        answers = [list(h.token_ids) for h in result.nbest]
        scored = off.logprobs([prompts[b]] * len(answers), answers)
        exact = scored.logprobs.masked_fill(~scored.mask[:, None, :], 0.0).sum(-1)  # [N, K]
        got = torch.tensor([list(h.passage_logprobs) for h in result.nbest])
        torch.testing.assert_close(got, exact, atol=ATOL, rtol=0)
        mixture = torch.logsumexp(log_prior[b] + exact, dim=1)
        assert [h.logprob for h in result.nbest] == pytest.approx(mixture.tolist(), abs=ATOL)


@pytest.mark.slow
def test_other_weights_never_read_an_entry(smollm2: TransformersGenerator) -> None:
    cache = PassageCache()
    prompts, answers = _prompts(smollm2, QUESTIONS[:1]), _answers(smollm2)[:1]
    base = _with_cache(smollm2, cache)
    base.logprobs(prompts, answers)
    entries = len(cache)
    # a copy of the weights is the same key; a "trained" copy (one weight moved a
    # little, as an optimizer step does) is another
    model = copy.deepcopy(smollm2.model)
    trained = TransformersGenerator(
        smollm2.config, model=model, tokenizer=smollm2.tokenizer, passage_cache=cache
    )
    assert trained.weights_fingerprint() == base.weights_fingerprint()
    with torch.no_grad():
        model.get_output_embeddings().weight[7, 3] += 1e-3
    assert trained.weights_fingerprint() != base.weights_fingerprint()
    hits = cache.stats().hits
    trained_lp = trained.logprobs(prompts, answers).logprobs
    assert cache.stats().hits == hits and len(cache) == 2 * entries  # nothing read, all new
    # in-place changes of the same model are noticed (the version counters move)
    before = trained.weights_fingerprint()
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert trained.weights_fingerprint() != before
    changed = trained.logprobs(prompts, answers).logprobs
    off = TransformersGenerator(
        dataclasses.replace(smollm2.config, passage_cache_mb=0),
        model=model,
        tokenizer=smollm2.tokenizer,
    )
    torch.testing.assert_close(changed, off.logprobs(prompts, answers).logprobs, atol=ATOL, rtol=0)
    assert not torch.equal(changed, trained_lp)
    # and the base model still reads its own entries
    hits = cache.stats().hits
    base.logprobs(prompts, answers)
    assert cache.stats().hits == hits + len(PASSAGES)


def test_weights_hash_sees_every_tensor() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    h = weights_hash(model)
    assert h == weights_hash(model)
    with torch.no_grad():
        model[1].bias[0] += 1.0
    assert weights_hash(model) != h


# ---------------------------------------------------------------- Qwen2.5


@pytest.mark.slow
def test_qwen_cached_logprobs_equal_uncached(qwen: TransformersGenerator) -> None:
    prompts = _prompts(qwen, QUESTIONS[:1])
    prompts = [prompts[0][:2]]
    answers = _answers(qwen)[:1]
    ref = _with_cache(qwen, passage_cache_mb=0).logprobs(prompts, answers).logprobs
    on = _with_cache(qwen, PassageCache())
    cold = on.logprobs(prompts, answers).logprobs
    warm = on.logprobs(prompts, answers).logprobs
    torch.testing.assert_close(cold, ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(warm, ref, atol=ATOL, rtol=0)


@pytest.mark.slow
def test_qwen_concat_caches_its_first_passage(qwen: TransformersGenerator) -> None:
    _check_concat_prompts(qwen)


def test_head_memo_keeps_the_closed_book_prefix_beside_the_passage_head(
    smollm2: TransformersGenerator,
) -> None:
    """The support pass alternates closed-book and passage prompts: neither evicts the other."""
    gen = _with_cache(smollm2, PassageCache())
    prompts, answers = _prompts(smollm2), _answers(smollm2)
    fmt = PromptFormat(few_shot=True)
    closed = [[gen.render(fmt.closed_book(q))] for q in QUESTIONS]
    ref_passages = gen.logprobs(prompts, answers).logprobs
    ref_closed = gen.logprobs(closed, answers).logprobs
    contexts = gen._contexts
    assert contexts is not None and len(contexts._prefixes) >= 2
    kept = {ids: kv for ids, kv in contexts._prefixes}
    torch.testing.assert_close(gen.logprobs(prompts, answers).logprobs, ref_passages)
    torch.testing.assert_close(gen.logprobs(closed, answers).logprobs, ref_closed)
    # the same KV objects served both again: nothing was recomputed
    assert all(kept.get(ids) is kv for ids, kv in contexts._prefixes)


def test_a_single_closed_book_prompt_runs_after_its_memoised_head_in_one_pass(
    smollm2: TransformersGenerator,
) -> None:
    """One prompt without a passage (the support pass, a closed-book or concat ask): the
    memo keeps its head only, and a later question runs in one forward pass, exactly."""
    gen = _with_cache(smollm2, PassageCache())
    fmt = PromptFormat(few_shot=True)
    answer = [gen.encode_answer("Paris")]
    rendered = [gen.render(fmt.closed_book(q)) for q in QUESTIONS]
    encoded = [gen._encode(r) for r in rendered]
    assert all(e.head == e.cached == encoded[0].head > 0 for e in encoded)
    head = tuple(encoded[0].ids[: encoded[0].head])
    calls: list[int] = []
    hook = gen.model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        for prompt in rendered:
            calls.clear()
            got = gen.logprobs([[prompt]], answer).logprobs[0, 0]
            passes = len(calls)
            ref = full_forward(gen, prompt, answer[0])
            torch.testing.assert_close(got[: len(answer[0])], ref, atol=ATOL, rtol=0)
            contexts = gen._contexts
            assert contexts is not None
            assert [ids for ids, _kv in contexts._prefixes] == [head]
        assert passes == 1  # the last question: its head was kept
    finally:
        hook.remove()
