"""TransformersGenerator on SmolLM2-135M: batched scoring and step decoding are exact.

References: the same rows scored one at a time without prefix sharing, an
unpadded full forward with a full log-softmax, and ``model.generate``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mixrag.decoding import DecodingConfig, greedy, greedy_answers
from mixrag.generator import TokenLogprobs, TransformersGenerator
from mixrag.generator.prompts import PromptFormat
from tests.generator.helpers import PASSAGES, QUESTIONS, full_forward

pytestmark = pytest.mark.slow
ATOL = 1e-4


def _prompts(gen: TransformersGenerator, fmt: PromptFormat) -> list[list[str]]:
    return [[gen.render(fmt.passage(q, p)) for p in PASSAGES] for q in QUESTIONS]


def _answers(gen: TransformersGenerator) -> list[list[int]]:
    # different lengths; the first includes the end-of-turn token
    return [[*gen.encode_answer("Paris"), gen.eos_ids[-1]], gen.encode_answer("in 1961 and 1962")]


def test_tokenisation_does_not_duplicate_bos(smollm2: TransformersGenerator) -> None:
    prompt = smollm2.render([{"role": "user", "content": "hi"}])
    assert prompt.startswith("<|im_start|>system") and prompt.endswith("<|im_start|>assistant\n")
    ids = smollm2.encode_prompt(prompt)
    assert ids[0] == smollm2.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert ids[1] != ids[0]
    assert smollm2.decode(smollm2.encode_answer("the Sella River")) == "the Sella River"
    im_end = smollm2.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in smollm2.eos_ids
    assert smollm2.vocab_size == 49152


@pytest.mark.parametrize("few_shot", [False, True])
def test_batched_scoring_equals_one_at_a_time(
    smollm2: TransformersGenerator, smollm2_plain: TransformersGenerator, few_shot: bool
) -> None:
    prompts = _prompts(smollm2, PromptFormat(few_shot=few_shot))
    answers = _answers(smollm2)
    batched = smollm2.logprobs(prompts, answers)
    assert isinstance(batched, TokenLogprobs)
    t = max(len(a) for a in answers)
    assert batched.logprobs.shape == (2, 3, t) and batched.logprobs.dtype == torch.float32
    assert batched.mask.tolist() == [[i < len(a) for i in range(t)] for a in answers]
    for b, row in enumerate(prompts):
        n = len(answers[b])
        assert (batched.logprobs[b, :, n:] == 0).all()
        # with the ~300-token few-shot prefix, one reference row per question keeps it quick
        for j, prompt in enumerate(row) if not few_shot else [(b, row[b])]:
            single = smollm2_plain.logprobs([[prompt]], [answers[b]]).logprobs[0, 0, :n]
            torch.testing.assert_close(batched.logprobs[b, j, :n], single, atol=ATOL, rtol=0)
    # the unpadded full-vocabulary reference, for one row per question
    for b in range(2):
        ref = full_forward(smollm2, prompts[b][1], answers[b])
        torch.testing.assert_close(
            batched.logprobs[b, 1, : len(answers[b])], ref, atol=ATOL, rtol=0
        )


def test_prefix_cache_across_calls_and_chunking_agree(
    smollm2: TransformersGenerator, smollm2_plain: TransformersGenerator
) -> None:
    prompts = _prompts(smollm2, PromptFormat(few_shot=True))
    answers = _answers(smollm2)
    first = smollm2.logprobs(prompts, answers).logprobs
    assert smollm2._contexts is not None and smollm2._contexts._prefixes  # kept
    second = smollm2.logprobs(prompts[::-1], answers[::-1]).logprobs.flip(0)
    torch.testing.assert_close(first, second, atol=ATOL, rtol=0)
    tiny_chunks = TransformersGenerator(
        dataclasses.replace(smollm2.config, max_batch_tokens=150, max_batch_rows=2),
        model=smollm2.model,
        tokenizer=smollm2.tokenizer,
    )
    torch.testing.assert_close(
        tiny_chunks.logprobs(prompts, answers).logprobs, first, atol=ATOL, rtol=0
    )


@pytest.mark.parametrize("tiny", [False, True])
def test_grouped_prompts_equal_row_by_row_scoring(
    smollm2: TransformersGenerator, tiny: bool
) -> None:
    # RAG-Sequence rescoring: every hypothesis under every passage of one question
    row = _prompts(smollm2, PromptFormat(few_shot=True))[0]
    answers = [
        *_answers(smollm2),
        [smollm2.eos_ids[-1]],  # one token: only the prompt pass predicts it
        smollm2.encode_answer("the capital of France, Paris"),
    ]
    prompts = [row] * len(answers)
    config = dataclasses.replace(smollm2.config, group_prompts=True)
    if tiny:  # several prompt chunks and answer chunks
        config = dataclasses.replace(config, max_batch_tokens=80, max_batch_rows=2)
    grouped = TransformersGenerator(config, model=smollm2.model, tokenizer=smollm2.tokenizer)
    rowwise = TransformersGenerator(
        dataclasses.replace(config, group_prompts=False),
        model=smollm2.model,
        tokenizer=smollm2.tokenizer,
    )
    got, ref = grouped.logprobs(prompts, answers), rowwise.logprobs(prompts, answers)
    assert got.mask.tolist() == ref.mask.tolist()
    torch.testing.assert_close(got.logprobs, ref.logprobs, atol=ATOL, rtol=0)
    # and against the unpadded full-vocabulary reference
    torch.testing.assert_close(
        got.logprobs[3, 2, : len(answers[3])],
        full_forward(smollm2, row[2], answers[3]),
        atol=ATOL,
        rtol=0,
    )


def test_scoring_does_not_depend_on_an_earlier_decode(
    smollm2: TransformersGenerator, smollm2_plain: TransformersGenerator
) -> None:
    row = _prompts(smollm2, PromptFormat(few_shot=True))[1]
    gen = TransformersGenerator(smollm2.config, model=smollm2.model, tokenizer=smollm2.tokenizer)
    answers = [gen.encode_answer("in 1961"), [gen.eos_ids[-1]], gen.encode_answer("Berlin Wall")]
    before = gen.logprobs([row] * 3, answers)
    state = gen.start(row)
    for _ in range(3):  # decoding moves on, with beam-style row re-ordering
        state.advance(state.logprobs().argmax(-1)[[2, 0, 0]], torch.tensor([2, 0, 0]))
    after = gen.logprobs([row] * 3, answers)
    ref = smollm2_plain.logprobs([row] * 3, answers)
    torch.testing.assert_close(after.logprobs, before.logprobs, atol=ATOL, rtol=0)
    torch.testing.assert_close(after.logprobs, ref.logprobs, atol=ATOL, rtol=0)


def test_sequence_logprobs_and_empty_answers(smollm2: TransformersGenerator) -> None:
    prompts = [["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"]] * 2
    out = smollm2.logprobs(prompts, [smollm2.encode_answer("Hello"), []])
    assert out.logprobs.shape[:2] == (2, 1)
    assert (out.logprobs[1] == 0).all() and not out.mask[1].any()
    seq = out.sequence_logprobs()
    assert seq[1, 0] == 0 and seq[0, 0] < 0


def test_scoring_rejects_ragged_k(smollm2: TransformersGenerator) -> None:
    with pytest.raises(ValueError, match="same number of prompts"):
        smollm2.logprobs([["a", "b"], ["c"]], [[1], [2]])
    with pytest.raises(ValueError, match="2 prompt lists but 1 answers"):
        smollm2.logprobs([["a"], ["b"]], [[1]])


def test_greedy_steps_equal_model_generate(smollm2: TransformersGenerator) -> None:
    fmt = PromptFormat(few_shot=False)
    prompts = [smollm2.render(fmt.passage(q, p)) for q in QUESTIONS for p in PASSAGES[:2]]
    n_new = 10
    decoded = greedy(
        smollm2, prompts, DecodingConfig(max_new_tokens=n_new), eos_ids=smollm2.eos_ids
    )
    mine = [[t for t in r.token_ids if t not in smollm2.eos_ids] for r in decoded]
    eos = list(smollm2.eos_ids)
    for prompt, ids in zip(prompts, mine, strict=True):
        enc = torch.tensor([smollm2.encode_prompt(prompt)])
        with torch.inference_mode():
            out = smollm2.model.generate(
                enc,
                attention_mask=torch.ones_like(enc),
                max_new_tokens=n_new,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=eos[0],
            )
        ref = [t for t in out[0, enc.shape[1] :].tolist() if t not in eos]
        assert ids == ref


def test_advance_with_rows_equals_fresh_forward(smollm2: TransformersGenerator) -> None:
    # no few-shot turns: short prompts, still a shared prefix (chat header, instruction)
    fmt = PromptFormat(few_shot=False)
    prompts = [smollm2.render(fmt.passage(QUESTIONS[0], p)) for p in PASSAGES]
    state = smollm2.start(prompts)
    assert state.logprobs().shape == (3, smollm2.vocab_size)
    t1 = torch.tensor([11, 22, 33])
    state.advance(t1)
    rows = torch.tensor([2, 0, 0, 1])  # reorder, duplicate, grow N
    t2 = torch.tensor([44, 55, 66, 77])
    state.advance(t2, rows)
    got = state.logprobs()
    assert got.shape == (4, smollm2.vocab_size)
    for r in range(4):
        old = int(rows[r])
        ids = [*smollm2.encode_prompt(prompts[old]), int(t1[old]), int(t2[r])]
        with torch.inference_mode():
            ref = smollm2.model(torch.tensor([ids])).logits[0, -1].float().log_softmax(-1)
        torch.testing.assert_close(got[r], ref, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="one token per row"):
        state.advance(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="rows must be"):
        state.advance(torch.tensor([1]), torch.tensor([9]))


def test_generate_answers_from_the_passage(smollm2: TransformersGenerator) -> None:
    prompt = smollm2.render(PromptFormat().passage(QUESTIONS[0], PASSAGES[0]))
    (answer,) = greedy_answers(smollm2, [prompt], max_new_tokens=12)
    assert "\n" not in answer and not answer.endswith(".")
    assert "Paris" in answer


def test_chunked_start_equals_one_batch(smollm2: TransformersGenerator) -> None:
    prompts = [
        smollm2.render(PromptFormat(few_shot=False).passage(q, PASSAGES[2])) for q in QUESTIONS
    ]
    prompts.append(smollm2.render(PromptFormat(few_shot=False).passage(QUESTIONS[0], PASSAGES[1])))
    one = smollm2.start(prompts)
    chunked_gen = TransformersGenerator(
        dataclasses.replace(smollm2.config, max_batch_rows=2),
        model=smollm2.model,
        tokenizer=smollm2.tokenizer,
    )
    chunked = chunked_gen.start(prompts)
    torch.testing.assert_close(chunked.logprobs(), one.logprobs(), atol=ATOL, rtol=0)
    step = one.logprobs().argmax(-1)
    one.advance(step, torch.tensor([2, 1, 0]))
    chunked.advance(step, torch.tensor([2, 1, 0]))
    torch.testing.assert_close(chunked.logprobs(), one.logprobs(), atol=ATOL, rtol=0)
