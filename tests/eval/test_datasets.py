from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from tests.helpers import DEMO_SQUAD

from mixrag.errors import MixragError
from mixrag.eval.datasets import Dataset, Question, Skipped, load_dataset, load_squad, sample

SQUAD = {
    "version": "1.1",
    "data": [
        {
            "title": "Bern",
            "paragraphs": [
                {
                    "context": "Bern is the capital.",
                    "qas": [
                        {"id": "q1", "question": "Capital?", "answers": [{"text": "Bern"}] * 2},
                        {"id": "q2", "question": "Unanswered?", "answers": []},
                    ],
                },
                {
                    "context": "Zurich is big.",
                    "qas": [
                        {"id": "q3", "question": "Biggest?", "answers": [{"text": "Zurich"}]},
                        {"id": "q4", "question": "Broken?", "answers": [{"start": 3}]},
                        "not a qa",
                    ],
                },
            ],
        },
        {"title": "Broken article", "paragraphs": "nope"},
        {"title": "Geneva", "paragraphs": [{"qas": [{"question": "no id", "answers": []}]}]},
    ],
}


def _write(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["dev.json", "dev.json.gz"])
def test_squad_keeps_good_questions_and_says_why_others_were_skipped(
    tmp_path: Path, name: str
) -> None:
    ds = load_dataset(_write(tmp_path / name, json.dumps(SQUAD)))
    assert ds.format == "squad"
    assert [q.id for q in ds.questions] == ["q1", "q3"]
    assert ds.questions[0] == Question(
        "q1", "Capital?", ("Bern",), gold_doc_keys=("0:0",), metadata={"title": "Bern"}
    )
    assert ds.questions[1].gold_doc_keys == ("0:1",)
    reasons = [s.reason for s in ds.skipped]
    assert all(s.line is None for s in ds.skipped)
    assert reasons[0] == "question q2: no answers"
    assert reasons[1].startswith("question q4: answers must be")
    assert reasons[2] == "article 0 paragraph 1 question 2: not an object (str)"
    assert reasons[3] == "article 1: not an object with a paragraphs list"
    assert reasons[4] == "article 2 paragraph 0 question 0: missing or non-string id"
    assert len(reasons) == 5
    assert load_squad(tmp_path / name) == ds.questions


def test_demo_file_matches_load_squad() -> None:
    ds = load_dataset(DEMO_SQUAD)
    assert ds.format == "squad" and ds.skipped == []
    assert len(ds.questions) == len(load_squad(DEMO_SQUAD)) > 0
    assert ds.questions[0].gold_doc_keys == ("0:0",)


def test_not_squad_layout_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MixragError, match="not SQuAD layout"):
        load_dataset(_write(tmp_path / "x.json", "[1, 2]"))
    with pytest.raises(MixragError, match="not a readable JSON"):
        load_dataset(_write(tmp_path / "y.json", "{oops"))


JSONL = "\n".join(
    [
        '{"question": "Capital of Switzerland?", "answers": ["Bern", "Berne"], "id": "ch"}',
        "",  # line 2: blank, ignored
        '{"question": "Capital of France?", "answer": "Paris", "gold_doc": "fr.txt"}',
        "{not json",  # 4
        '["a list"]',  # 5
        '{"question": "", "answers": ["x"]}',  # 6
        '{"question": "No answers?"}',  # 7
        '{"question": "Numbers?", "answers": [1, 2]}',  # 8
        '{"question": "Again?", "answers": ["Bern"], "id": "ch"}',  # 9: duplicate id
        '{"question": "Gold?", "answers": ["x"], "gold_passage_ids": ["p1", "p2"],'
        ' "gold_doc": ["a", "b"]}',  # 10
        '{"question": "Empty?", "answers": []}',  # 11
        "   ",  # 12: blank
        '{"question": "Last?", "answers": ["y"], "id": 7}',  # 13
        "",
    ]
)


@pytest.mark.parametrize("name", ["qa.jsonl", "qa.jsonl.gz"])
def test_jsonl_reports_bad_lines_by_number(tmp_path: Path, name: str) -> None:
    ds = load_dataset(_write(tmp_path / name, JSONL))
    assert ds.format == "jsonl"
    assert [q.id for q in ds.questions] == ["ch", "line3", "line10", "7"]
    assert ds.questions[0].answers == ("Bern", "Berne")
    assert ds.questions[1].answers == ("Paris",)
    assert ds.questions[1].gold_doc_keys == ("fr.txt",)
    assert ds.questions[2].gold_passage_ids == ("p1", "p2")
    assert ds.questions[2].gold_doc_keys == ("a", "b")
    assert [s.line for s in ds.skipped] == [4, 5, 6, 7, 8, 9, 11]
    why = {s.line: s.reason for s in ds.skipped}
    assert why[4].startswith("invalid JSON")
    assert why[5] == "not a JSON object (list)"
    assert why[6] == "missing or empty 'question'"
    assert why[7] == "missing 'answers'"
    assert "non-empty strings" in why[8] and "1" in why[8]
    assert why[9] == "duplicate id 'ch'"
    assert why[11] == "'answers' is empty"
    assert ds.to_dict() == {
        "path": str(tmp_path / name),
        "format": "jsonl",
        "total": 4,
        "skipped": [{"line": s.line, "reason": s.reason} for s in ds.skipped],
    }


def test_nq_tsv_python_and_json_lists(tmp_path: Path) -> None:
    text = (
        "what is the capital of switzerland\t['Bern', 'Berne']\n"
        'who wrote hamlet\t["William Shakespeare"]\n'
        "a line without a tab\n"
        "broken list\t['unclosed\n"
        "\n"
        "code is not run\t__import__('os').getcwd()\n"
        "empty list\t[]\n"
        "ends with crlf\t['x']\r\n"
    )
    for name in ("nq.tsv", "nq.txt", "nq.tsv.gz"):
        ds = load_dataset(_write(tmp_path / name, text))
        assert ds.format == "nq-tsv"
        assert [(q.id, q.question, q.answers) for q in ds.questions] == [
            ("line1", "what is the capital of switzerland", ("Bern", "Berne")),
            ("line2", "who wrote hamlet", ("William Shakespeare",)),
            ("line8", "ends with crlf", ("x",)),
        ]
        assert [s.line for s in ds.skipped] == [3, 4, 6, 7]
        assert ds.skipped[0] == Skipped(3, "no tab between question and answers")
        assert "not a JSON or Python list" in ds.skipped[1].reason
        assert "not a JSON or Python list" in ds.skipped[2].reason
        assert ds.skipped[3].reason == "answers is empty"


def test_explicit_format_overrides_the_name(tmp_path: Path) -> None:
    path = _write(tmp_path / "questions.data", 'q?\t["a"]\n')
    ds = load_dataset(path, format="nq-tsv")
    assert isinstance(ds, Dataset) and ds.format == "nq-tsv" and len(ds.questions) == 1
    jl = _write(tmp_path / "qa.json", '{"question": "q?", "answers": ["a"]}\n')
    assert load_dataset(jl, format="jsonl").questions[0].id == "line1"
    with pytest.raises(MixragError, match="accepted: squad, jsonl, nq-tsv"):
        load_dataset(path, format="csv")


def test_unknown_extension_names_path_and_formats(tmp_path: Path) -> None:
    path = _write(tmp_path / "questions.csv.gz", "q,a\n")
    with pytest.raises(MixragError) as e:
        load_dataset(path)
    msg = str(e.value)
    assert str(path) in msg
    for token in (".json", ".jsonl", ".tsv", ".txt", "squad", "jsonl", "nq-tsv"):
        assert token in msg


def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(MixragError, match=r"no such dataset: .*missing\.jsonl"):
        load_dataset(tmp_path / "missing.jsonl")


def test_all_bad_file_is_an_error_with_first_reasons(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", "{oops\n[1]\n\n{}\n{}\n")
    with pytest.raises(MixragError) as e:
        load_dataset(path)
    msg = str(e.value)
    assert "no usable questions" in msg and "4 records skipped" in msg
    assert "line 1: invalid JSON" in msg and "line 2: not a JSON object" in msg
    assert "line 4:" in msg and "line 5:" not in msg  # only the first few
    with pytest.raises(MixragError, match="no usable questions"):
        load_dataset(_write(tmp_path / "empty.tsv", "\n\n"))


def test_sample_is_seeded_and_ordered() -> None:
    qs = [Question(str(i), "q", ("a",)) for i in range(10)]
    a = sample(qs, 4, seed=3)
    assert a == sample(qs, 4, seed=3) and len(a) == 4
    assert [int(q.id) for q in a] == sorted(int(q.id) for q in a)
    assert sample(qs, None) == qs and sample(qs, 99) == qs
