"""bench/merge_candidates.py on hand-made records: summed mass of strings equal under
SQuAD normalisation, and the oracle over the candidates."""

from __future__ import annotations

import math
import sys
from typing import Any

from tests.helpers import REPO, load_script


def _module() -> Any:
    sys.path.insert(0, str(REPO / "bench"))  # the script imports its neighbours
    return load_script(REPO / "bench" / "merge_candidates.py")


def _record(text: str, p: float, em: float, alts: list[tuple[str, float, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"prediction": text, "logprob": math.log(p), "em": em}
    if alts:
        out["alternatives"] = [[t, math.log(q), e] for t, q, e in alts]
    return out


def test_strings_equal_under_normalisation_pool_their_mass() -> None:
    m = _module()
    run = "rag-sequence@5"
    results = {
        "answers": {run: {}, "concat@3": {}},
        "questions": [
            # 0.30 + 0.25 for "Denver Broncos" beats 0.40 for "Broncos"
            {"answers": {run: _record("Broncos", 0.4, 0.0, [("the Denver Broncos", 0.3, 1.0),
                                                             ("Denver Broncos.", 0.25, 1.0)]),
                         "concat@3": _record("Broncos", 0.5, 0.0, [])}},
            # "6" and "six" are different answers to SQuAD: nothing pools
            {"answers": {run: _record("six", 0.5, 1.0, [("6", 0.3, 0.0)])}},
            # the passages agreed: no alternatives, the answer stands
            {"answers": {run: _record("1901", 0.9, 0.0, [])}},
        ],
    }  # fmt: skip
    s = m.study(results, run)
    assert s["n"] == 3 and s["questions_changed"] == 1
    assert math.isclose(s["em_answers"], 100 / 3) and math.isclose(s["em_merged"], 200 / 3)
    assert math.isclose(s["em_oracle"], 200 / 3) and math.isclose(s["candidates_mean"], 2.0)
    choice, mass = m.merged(m.candidates(results["questions"][0]["answers"][run]))
    assert choice[0] == "the Denver Broncos" and math.isclose(mass, math.log(0.55))
    assert m.has_alternatives(results, run) and not m.has_alternatives(results, "concat@3")


def test_extractive_choice_is_the_most_likely_candidate_found_in_a_passage() -> None:
    m = _module()
    run = "rag-sequence@5"
    passages = {"a": "Super Bowl 50 The Carolina Panthers met the Denver Broncos.", "b": "Levi's"}
    results = {
        "answers": {run: {}},
        "questions": [
            # the answer is no span; of the spans, the likelier one wins (case ignored)
            {"answers": {run: {**_record("Broncos of Denver", 0.5, 0.0,
                                         [("carolina panthers", 0.2, 1.0),
                                          ("Denver Broncos", 0.1, 0.0)]),
                               "passage_ids": ["a", "b"]}}},
            # no candidate is a span of its passages: the answer stands
            {"answers": {run: {**_record("Stanford", 0.6, 0.0, [("Miami", 0.3, 0.0)]),
                               "passage_ids": ["b"]}}},
        ],
    }  # fmt: skip
    s = m.study(results, run, lambda ids: [passages[i] for i in ids])
    assert s["em_answers"] == 0.0 and math.isclose(s["em_extractive"], 50.0)
    assert s["extractive_changed"] == 1
    assert "em_extractive" not in m.study(results, run)  # only with the passages' texts
