"""Attribution: the citation parser, the methods' rules and metrics, the methods on a fake
generator, the report section; one tiny real ``eval --attribution`` (slow)."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from mixrag.answer import Answer, Citation
from mixrag.eval.attributing import Attributable, AttributionModel, attribute
from mixrag.eval.attribution import (
    AttributionConfig,
    ablation_scores,
    answer_metrics,
    parse_citations,
    thresholded,
)
from mixrag.eval.attribution_results import (
    AttributionRecord,
    attribution_markdown,
    summarize_attribution,
)
from mixrag.eval.datasets import Question
from mixrag.eval.results import EvalResults
from mixrag.generator import TransformersGenerator
from mixrag.generator.base import TokenLogprobs
from mixrag.generator.prompts import PromptFormat
from mixrag.index.folder import Index
from mixrag.types import Hit, Passage

CFG = AttributionConfig()

# ---------------------------------------------------------------- the citation parser


@pytest.mark.parametrize(
    ("text", "cited", "invalid"),
    [
        ("[2]", (2,), ()),
        (" [3] [1]", (3, 1), ()),  # the order written
        ("[1][3]", (1, 3), ()),
        ("[1, 3]", (1, 3), ()),
        ("[2 and 4]", (2, 4), ()),
        ("[2][2]", (2,), ()),  # a repeat counts once
        ("Paris", (), ()),  # nothing cited
        ("", (), ()),
        ("[0]", (), ("[0]",)),  # numbers start at 1
        ("[6]", (), ("[6]",)),  # K = 5
        ("[]", (), ("[]",)),
        ("[a]", (), ("[a]",)),
        ("[2][7]", (2,), ("[7]",)),  # the valid one is kept
        ("[-1]", (), ("[-1]",)),
    ],
)
def test_parse_citations(text: str, cited: tuple[int, ...], invalid: tuple[str, ...]) -> None:
    parsed = parse_citations(text, k=5)
    assert parsed.cited == cited and parsed.invalid == invalid


# ---------------------------------------------------------------- rules and metrics


def test_thresholded_cites_the_top_and_those_above_the_threshold() -> None:
    assert thresholded([0.1, 0.6, 0.3], 0.25) == (2, 3)
    assert thresholded([0.1, 0.6, 0.3], 0.7) == (2,)  # the top-1 whatever its score
    assert thresholded([0.5, 0.5], 0.6) == (1,)  # ties: the first position
    assert thresholded([-2.0, -1.0], math.log(2)) == (2,)
    assert thresholded([], 0.25) == ()


def test_ablation_scores_are_full_minus_left_out() -> None:
    seq = torch.tensor([[-1.0, -3.0, -1.5, -0.5]])  # all, without 1, without 2, without 3
    assert torch.allclose(ablation_scores(seq), torch.tensor([[2.0, 0.5, -0.5]]))


def test_answer_metrics_by_hand() -> None:
    m = answer_metrics(2, (2, 3), gold=(2,), with_answer=(2,), with_reference=(2, 4))
    assert (m.top1_gold, m.precision, m.recall) == (True, 0.5, 1.0)
    assert (m.answer_share, m.reference_share) == (0.5, 0.5)
    two_gold = answer_metrics(3, (3,), gold=(1, 2), with_answer=None, with_reference=())
    assert (two_gold.top1_gold, two_gold.precision, two_gold.recall) == (False, 0.0, 0.0)
    assert two_gold.answer_share is None and two_gold.reference_share == 0.0
    nothing = answer_metrics(None, (), gold=(1,), with_answer=(1,), with_reference=(1,))
    assert (nothing.top1_gold, nothing.precision, nothing.recall) == (False, None, 0.0)
    assert nothing.answer_share is None
    no_gold = answer_metrics(1, (1,), gold=(), with_answer=(1,), with_reference=())
    assert (no_gold.top1_gold, no_gold.precision, no_gold.recall) == (None, None, None)


def _record(**kw: object) -> AttributionRecord:
    base: dict[str, object] = {
        "gold": (2,),
        "with_answer": (2,),
        "with_reference": (2,),
        "prior": (0.5, 0.3, 0.2),
        "posterior": (0.1, 0.7, 0.2),
        "ablation": (0.0, 3.0, 0.8),
        "prompted": (2,),
        "prompted_text": "[2]",
        "prompted_invalid": (),
        "passes": {"posterior": 0, "prompted": 3, "ablation": 4, "rank": 0},
        "seconds": {"posterior": 0.0, "prompted": 0.2, "ablation": 0.4, "rank": 0.0},
    }
    base.update(kw)
    return AttributionRecord(**base)  # type: ignore[arg-type]


def test_each_method_names_its_top1_and_set() -> None:
    rec = _record()
    assert rec.named("posterior", CFG) == (2, (2,))
    assert rec.named("ablation", CFG) == (2, (2, 3))  # 0.8 >= log 2
    assert rec.named("rank", CFG) == (1, (1, 2))  # rank 1, then prior 0.3 >= 0.25
    assert rec.named("prompted", CFG) == (2, (2,))
    assert _record(prompted=()).named("prompted", CFG) == (None, ())
    with pytest.raises(ValueError, match="'oracle'"):
        rec.named("oracle", CFG)


def test_summary_and_disagreements_by_hand() -> None:
    records = {
        "q1": _record(),  # everyone but rank names 2 (gold)
        "q2": _record(posterior=(0.6, 0.3, 0.1), prompted=()),  # posterior wrong, cites none
        "q3": _record(gold=(), with_answer=None),  # no gold among the K
    }
    out = summarize_attribution(
        ["q1", "q2", "q3", "q4"], {"concat@3": records}, [("concat", 3)], CFG
    )
    run = out["concat@3"]
    post, prompted, rank = (run.methods[m] for m in ("posterior", "prompted", "rank"))
    assert (post.n, post.n_with_gold) == (3, 2)
    assert post.top1_precision == 0.5  # q1 right, q2 wrong (q3 has no gold)
    # q1 cites {2}: 1/1; q2 cites {1, 2} (0.3 >= 0.25): 1/2
    assert post.precision == pytest.approx(0.75) and post.recall == 1.0
    assert prompted.top1_precision == 0.5 and prompted.none == pytest.approx(1 / 3)
    assert prompted.precision == 1.0  # over the answers that cite something
    assert rank.top1_precision == 0.0 and rank.precision == 0.5  # {1, 2} twice
    assert post.passes == 0 and prompted.passes == 3 and run.methods["ablation"].passes == 4
    # y in cited: q1 {2} holds y; q2 {1,2}: half; q3 has an empty answer
    assert post.answer_share == pytest.approx(0.75)
    d = run.disagreements["ablation"]  # ablation names 2 everywhere
    assert (d.n, d.differ, d.posterior_right, d.other_right) == (3, 1, 0, 1)
    assert d.other_right_ids == ("q2",)
    assert run.disagreements["prompted"].n == 2  # q2's prompted citation named nothing
    md = "\n".join(attribution_markdown(out))
    assert "## Attribution" in md and "| posterior | 0.500 | 0.750 | 1.000 |" in md
    assert (
        "posterior vs ablation: top-1 differs on 1 of 3; posterior right 0, ablation right 1" in md
    )


def test_results_round_trip_with_attribution() -> None:
    records = {"q1": _record()}
    summary = summarize_attribution(["q1"], {"concat@3": records}, [("concat", 3)], CFG)
    raw = {
        "version": 1,
        "questions": [
            {
                "id": "q1",
                "question": "?",
                "references": ["a"],
                "gold": ["d"],
                "retrieval": {},
                "answers": {},
                "attribution": {"concat@3": records["q1"].to_dict()},
            },
            {
                "id": "q2",
                "question": "?",
                "references": [],
                "gold": [],
                "retrieval": {},
                "answers": {},
            },
        ],
        "attribution": {k: v.to_dict() for k, v in summary.items()},
    }
    back = EvalResults.from_dict(json.loads(json.dumps(raw)))
    assert back.attribution == summary
    assert back.questions[0].attribution == {"concat@3": records["q1"]}
    out = back.to_dict()
    assert out["attribution"] == raw["attribution"]
    assert out["questions"][0]["attribution"] == raw["questions"][0]["attribution"]  # type: ignore[index]
    assert "attribution" not in out["questions"][1]
    assert "attribution" not in EvalResults().to_dict()


# ---------------------------------------------------------------- the methods on a fake


class SupportGenerator:
    """p(y_i) = 0.9 per answer token when the prompt holds "SUPPORT", else 0.1."""

    def __init__(self) -> None:
        self.calls: list[list[list[str]]] = []

    def logprobs(
        self, prompts: Sequence[Sequence[str]], answers: Sequence[Sequence[int]]
    ) -> TokenLogprobs:
        self.calls.append([list(r) for r in prompts])
        t = max(len(a) for a in answers)
        lp = torch.zeros(len(prompts), len(prompts[0]), t)
        mask = torch.zeros(len(prompts), t, dtype=torch.bool)
        for b, (row, ans) in enumerate(zip(prompts, answers, strict=True)):
            mask[b, : len(ans)] = True
            for j, prompt in enumerate(row):
                lp[b, j, : len(ans)] = math.log(0.9 if "SUPPORT" in prompt else 0.1)
        return TokenLogprobs(lp, mask)


def _fake_model(gen: SupportGenerator, replies: list[str]) -> tuple[AttributionModel, list[str]]:
    seen: list[str] = []

    def generate(prompts: Sequence[str], n: int) -> list[tuple[str, int]]:
        seen.extend(prompts)
        return [(r, min(n, 3)) for r in replies[: len(prompts)]]

    model = AttributionModel(
        scorer=gen,
        single=lambda q, p: f"{p.text}\nQ: {q}",
        concat=lambda q, ps: "".join(f"[{i}] {p.text}\n" for i, p in enumerate(ps, 1)) + q,
        cite=lambda q, ps, y: (
            "CITE " + "".join(f"[{i}] {p.text}\n" for i, p in enumerate(ps, 1)) + q + y
        ),
        generate=generate,
    )
    return model, seen


def _passage(i: int, text: str, doc: str) -> Passage:
    return Passage(id=f"p{i}", doc_id=f"file#{doc}", title="", text=text)


QUESTION = Question("q1", "Who built the mill?", ("Anna Berg",), gold_doc_keys=("gold",))
PASSAGES = (
    _passage(1, "The lake is deep.", "other"),
    _passage(2, "SUPPORT Anna Berg built the mill.", "gold"),
    _passage(3, "Mills grind grain.", "other"),
)


def test_only_passage_2_supports_y_posterior_and_ablation_pick_it_rank_picks_1() -> None:
    gen = SupportGenerator()
    model, seen = _fake_model(gen, [" [2]<"])
    item = Attributable(QUESTION, PASSAGES, (0.5, 0.3, 0.2), "Anna Berg", (4, 5))
    [rec] = attribute(model, [item], CFG)
    # posterior ∝ prior * p(y|z_j): 0.5*0.01, 0.3*0.81, 0.2*0.01
    z = 0.5 * 0.01 + 0.3 * 0.81 + 0.2 * 0.01
    assert rec.posterior == pytest.approx((0.005 / z, 0.243 / z, 0.002 / z), rel=1e-5)
    # leave-one-out: only dropping passage 2 loses "SUPPORT": 2 log 0.9 - 2 log 0.1
    assert rec.ablation == pytest.approx((0.0, 2 * math.log(9.0), 0.0), abs=1e-5)
    assert rec.prompted == (2,) and rec.prompted_text == " [2]<"
    assert [rec.named(m, CFG)[0] for m in ("posterior", "ablation", "prompted", "rank")] == [
        2,
        2,
        2,
        1,
    ]
    assert rec.gold == (2,) and rec.with_answer == (2,) and rec.with_reference == (2,)
    # the cited prompt ends with the answer, so the generator only adds citations
    assert seen == [model.cite(QUESTION.question, PASSAGES, "Anna Berg")]
    assert rec.passes == {"posterior": 3, "prompted": 3, "ablation": 4, "rank": 0}
    assert rec.seconds["rank"] == 0.0 and rec.seconds["ablation"] >= 0.0
    # two scoring calls: the posterior's K prompts, then leave-one-out's 1 + K
    assert [len(c[0]) for c in gen.calls] == [3, 4]
    assert gen.calls[1][0][0] == model.concat(QUESTION.question, list(PASSAGES))
    assert gen.calls[1][0][2] == model.concat(QUESTION.question, [PASSAGES[0], PASSAGES[2]])


def test_a_known_posterior_is_not_rescored_and_batches_mix_k() -> None:
    gen = SupportGenerator()
    model, _ = _fake_model(gen, ["[9]", "none"])
    rag_item = Attributable(
        QUESTION, PASSAGES, (0.5, 0.3, 0.2), "Anna Berg", (4, 5), posterior=(0.2, 0.7, 0.1)
    )
    one = Attributable(QUESTION, PASSAGES[1:2], (1.0,), "Anna", (4,))
    a, b = attribute(model, [rag_item, one], CFG)
    assert len(gen.calls) == 2 and len(gen.calls[0]) == 1  # the posterior of `one` only
    assert a.posterior == (0.2, 0.7, 0.1) and a.passes["posterior"] == 0
    assert a.seconds["posterior"] == 0.0
    assert a.prompted == () and a.prompted_invalid == ("[9]",)  # K = 3
    assert b.prompted == () and b.prompted_invalid == ()
    assert b.posterior == pytest.approx((1.0,)) and b.passes["posterior"] == 1
    # K = 1: leaving the passage out leaves the question alone, 1 log 0.9 - 1 log 0.1
    assert b.ablation == pytest.approx((math.log(9.0),), abs=1e-5)
    assert gen.calls[1][1][1] == QUESTION.question and len(b.ablation) == 1
    # padded to the batch's 1 + 3 prompts, sliced back
    assert a.ablation == pytest.approx((0.0, 2 * math.log(9.0), 0.0), abs=1e-5)


def test_attributable_of_an_answer() -> None:
    hits = [
        Hit(p, score=0.0, prior=pr, rank=i, rank_score=0.0)
        for i, (p, pr) in enumerate(zip(PASSAGES, (0.5, 0.3, 0.2), strict=True), 1)
    ]

    def answer(mode: str, posts: Sequence[float | None]) -> Answer:
        cites = tuple(Citation(h, h.prior, p, None) for h, p in zip(hits, posts, strict=True))
        return Answer("?", mode, "Anna Berg", -1.0, (4, 5, 0), cites, timings={"score": 0.3})

    seq = Attributable.of(QUESTION, answer("rag-sequence", (0.1, 0.8, 0.1)))
    assert seq.posterior == (0.1, 0.8, 0.1) and seq.posterior_passes == 0
    assert seq.posterior_seconds == 0.0 and seq.answer_ids == (4, 5, 0)
    scored = Attributable.of(QUESTION, answer("concat", (0.1, 0.8, 0.1)))
    assert scored.posterior_passes == 3 and scored.posterior_seconds == 0.3
    unscored = Attributable.of(QUESTION, answer("concat", (None, None, None)))
    assert unscored.posterior is None and unscored.prior == (0.5, 0.3, 0.2)


def test_cited_concat_prompt_asks_for_numbers() -> None:
    fmt = PromptFormat()
    msgs = fmt.cited_concat("Who?", list(PASSAGES))
    assert "in brackets" in msgs[0]["content"]
    replies = [m["content"] for m in msgs if m["role"] == "assistant"]
    assert replies == ["the Sella River [1]", "1904 [2]", "structural mechanics [2]"]
    assert msgs[-1]["content"].startswith("[1] The lake is deep.")
    assert "[3] Mills grind grain." in msgs[-1]["content"]
    plain = PromptFormat(style="plain", few_shot=False).cited_concat("Who?", list(PASSAGES))
    assert plain[0]["role"] == "system" and len(plain) == 2  # still asked to cite
    with pytest.raises(ValueError, match="at least one passage"):
        fmt.cited_concat("Who?", [])


# ---------------------------------------------------------------- a real tiny run


def test_eval_attribution_end_to_end_and_resume(
    tiny_index: Index,
    tiny_squad: Path,
    smollm2: TransformersGenerator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mixrag.eval.datasets import load_dataset
    from mixrag.eval.runner import EvalConfig, evaluate
    from mixrag.rag import RAG, RAGConfig

    dataset = load_dataset(tiny_squad)
    rag = RAG(tiny_index.retriever(), smollm2, RAGConfig(k=2, max_new_tokens=8))
    cfg = EvalConfig(
        modes=("closed-book", "concat", "rag-sequence"),
        ks=(2,),
        recall_ks=(1, 3),
        batch_size=2,
        limit=2,
        seed=1,
        attribution=True,
    )
    first = evaluate(tiny_index, dataset, cfg, tmp_path / "r", rag)
    assert set(first["attribution"]) == {"concat@2", "rag-sequence@2"}  # not closed-book
    for key, run in first["attribution"].items():
        assert set(run["methods"]) == {"posterior", "prompted", "ablation", "rank"}
        assert run["methods"]["posterior"]["n"] == 2
        assert run["methods"]["ablation"]["passes"] == 3  # 1 + K
        assert run["methods"]["posterior"]["passes"] == (0 if key.startswith("rag") else 2)
    for q in first["questions"]:
        for key, rec in q["attribution"].items():
            answer = q["answers"][key]
            assert len(rec["posterior"]) == len(rec["ablation"]) == len(answer["passage_ids"]) == 2
            assert math.isclose(sum(rec["posterior"]), 1.0, rel_tol=1e-4)
            if key.startswith("rag"):  # the answer's own posterior, not a re-scored one
                assert (
                    answer["cited"]
                    == answer["passage_ids"][rec["posterior"].index(max(rec["posterior"]))]
                )
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "## Attribution" in summary and "| posterior |" in summary

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("resumed run recomputed a finished question")

    # an answer whose attribution is missing (killed between the two writes) is answered
    # again, alone, and both records replaced
    qid = first["questions"][0]["id"]
    with sqlite3.connect(tmp_path / "r" / "cache.sqlite") as db:
        db.execute("DELETE FROM records WHERE run = 'attribution:concat@2' AND qid = ?", (qid,))
    real, asked = rag.ask_batch, []

    def counting(questions: list[str], **kw: object) -> object:
        asked.append((list(questions), kw["mode"]))
        return real(questions, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(rag, "ask_batch", counting)
    healed = evaluate(tiny_index, dataset, cfg, tmp_path / "r", rag)
    assert asked == [([first["questions"][0]["question"]], "concat")]
    assert (
        healed["questions"][0]["attribution"]["concat@2"]["gold"]
        == (first["questions"][0]["attribution"]["concat@2"]["gold"])
    )
    first = healed

    monkeypatch.setattr(rag, "ask_batch", boom)
    monkeypatch.setattr(rag, "retrieve", boom)
    again = evaluate(tiny_index, dataset, cfg, tmp_path / "r", rag)
    assert again["attribution"] == first["attribution"]
    assert again["questions"] == first["questions"]
