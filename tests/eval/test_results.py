"""Typed results: results.json files load, and give back the same JSON; bad values are named."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from tests.helpers import REPO, make_eval_results

from mixrag.eval.config import EvalConfig
from mixrag.eval.records import AnswerRecord, QuestionResult, RetrievalRecord
from mixrag.eval.results import (
    AnswerResult,
    EvalResults,
    Latency,
    ResultsConfig,
    ResultsError,
    as_results,
)

# A real report of the runner (40 SQuAD questions, four modes), committed with the benchmarks.
STORED = REPO / "bench" / "results" / "eval-cache-bf16" / "results.json"


def _dumps(data: object) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False)


def test_a_stored_results_file_loads_and_round_trips() -> None:
    raw = json.loads(STORED.read_text(encoding="utf-8"))
    results = EvalResults.from_dict(raw)

    assert results.to_dict() == raw
    assert _dumps(results.to_dict()) == _dumps(raw)  # same keys in the same order
    assert results.config.method == "dense" and results.config.recall_ks == (1, 5, 20)
    assert results.dataset is not None and results.dataset.evaluated == 40
    dense = results.retrieval["dense"]
    assert dense.recall[5] == 0.925 and dense.curve[0] == (1, 0.75)
    run = results.answers["rag-sequence@5"]
    assert (run.mode, run.k, run.n, run.em) == ("rag-sequence", 5, 40, 45.0)
    assert run.reliability[9].count == 0 and run.reliability[9].accuracy is None
    closed = results.answers["closed-book@0"]
    assert closed.answer_in_topk is None and closed.recall is None and closed.cited_gold is None
    assert len(results.questions) == 40
    record = results.questions[0].answers["concat@5"]
    assert isinstance(record, AnswerRecord) and isinstance(record.passage_ids, tuple)
    assert results.trained is None and results.partial is None
    assert results.command is not None and results.command.startswith("mixrag eval")


def test_complete_results_round_trip() -> None:
    raw = make_eval_results()
    raw["partial"] = {"answered": 20, "of": 50}
    assert EvalResults.from_dict(copy.deepcopy(raw)).to_dict() == raw
    del raw["partial"], raw["command"]
    back = EvalResults.from_dict(raw).to_dict()
    assert "partial" not in back and "command" not in back
    assert as_results(raw) == EvalResults.from_dict(raw)


def test_what_a_file_lacks_is_none_not_a_default() -> None:
    results = EvalResults.from_dict({"version": 1})
    assert results.config == ResultsConfig()
    assert results.config.method is None  # not EvalConfig's "dense"
    assert results.dataset is None and results.index is None and results.generator is None
    assert results.retrieval == {} and results.answers == {} and results.questions == ()
    assert results.recall_ks() == [1, 5, 20]

    run = AnswerResult.from_dict({"em": 12.5}, "rag-token@5")
    assert run.mode == "rag-token"  # from the run's key
    assert run.ece is None and run.reliability == () and run.latency_s == Latency()


def test_recall_ks_come_from_the_config_else_the_tables() -> None:
    raw = make_eval_results()
    raw["config"]["recall_ks"] = [2, 10]
    assert EvalResults.from_dict(raw).recall_ks() == [2, 10]
    raw["config"]["recall_ks"] = None
    assert EvalResults.from_dict(raw).recall_ks() == [1, 5, 20]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("answers/concat@5/em", "high", r"answers\['concat@5'\]\.em must be a number, got 'high'"),
        ("answers/concat@5/n", 2.5, r"answers\['concat@5'\]\.n must be an integer"),
        ("retrieval/dense/recall", {"top1": 0.5}, r"\['dense'\]\.recall has key 'top1'"),
        ("retrieval/bm25/curve", [[1, 0.1, 9]], r"\.curve\[0\] must be a \[k, recall\] pair"),
        ("dataset/skipped", [{"line": 3}], r"dataset\.skipped\[0\] has no 'reason'"),
        ("config/posteriors", "no", r"config\.posteriors must be true or false"),
        ("index", ["idx"], r"results\.index must be an object"),
    ],
)
def test_a_value_of_the_wrong_type_is_named(path: str, value: object, message: str) -> None:
    *parents, last = path.split("/")
    raw = make_eval_results()
    target = raw
    for key in parents:
        target = target[key]
    target[last] = value
    with pytest.raises(ResultsError, match=message):
        EvalResults.from_dict(raw)


def test_records_need_every_field() -> None:
    raw = make_eval_results()["questions"][0]
    question = QuestionResult.from_dict(raw)
    assert question.to_dict() == raw
    assert question.retrieval["dense"] == RetrievalRecord(("p1", "p2"), 1, 1, 0.004)

    del raw["answers"]["rag-sequence@5"]["cited"], raw["answers"]["rag-sequence@5"]["timings"]
    with pytest.raises(
        ResultsError, match=r"'q1'\.answers\['rag-sequence@5'\] lacks cited, timings"
    ):
        QuestionResult.from_dict(raw)


def test_a_record_keeps_its_alternatives_only_when_it_has_them() -> None:
    raw = make_eval_results()["questions"][0]["answers"]["rag-sequence@5"]
    assert "alternatives" not in raw and AnswerRecord.from_dict(raw).alternatives == ()
    with_alts = {**raw, "alternatives": [["Paris", -1.5, 1.0], ["Lyon", -3.25, 0.0]]}
    record = AnswerRecord.from_dict(with_alts)
    assert record.alternatives == (("Paris", -1.5, 1.0), ("Lyon", -3.25, 0.0))
    assert record.to_dict() == with_alts
    with pytest.raises(ResultsError, match=r"alternatives\[1\] must be \[text, logprob, em\]"):
        AnswerRecord.from_dict({**raw, "alternatives": [["Paris", -1.5, 1.0], ["Lyon"]]})


def test_results_config_records_every_eval_config_field() -> None:
    config = EvalConfig(modes=("concat",), ks=(2, 4), limit=7, posteriors=True)
    recorded = EvalResults(config=ResultsConfig.of(config, "q.json", "idx")).to_dict()["config"]
    assert recorded == {**config.to_dict(), "dataset": "q.json", "index": "idx"}
    assert ResultsConfig.from_dict(recorded) == ResultsConfig.of(config, "q.json", "idx")


def test_paths_and_numpy_numbers_are_accepted(tmp_path: Path) -> None:
    import numpy as np

    raw = make_eval_results()
    raw["dataset"]["path"] = tmp_path / "x.json"
    raw["answers"]["concat@5"]["em"] = np.float64(25.0)
    raw["answers"]["concat@5"]["n"] = np.int64(50)
    results = EvalResults.from_dict(raw)
    assert results.dataset is not None and results.dataset.path == str(tmp_path / "x.json")
    assert results.answers["concat@5"].em == 25.0 and results.answers["concat@5"].n == 50
    assert type(results.answers["concat@5"].n) is int
