"""The command line, end to end, with the real encoder (one index built per module)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mixrag.cli.main import app
from mixrag.retriever import DEFAULT_TAU
from mixrag.retriever.retriever import DEFAULT_BM25_WEIGHT
from tests.helpers import make_docs

runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, encoder: object) -> tuple[Path, Path]:
    # ``encoder``: the CLI loads the same bundled encoder itself; asking for the fixture
    # marks every test of this index slow (tests/conftest.py)
    root = tmp_path_factory.mktemp("cli")
    docs = make_docs(root / "docs")
    result = runner.invoke(app, ["index", str(docs), "--index", str(root / "idx"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "3 new" in result.output
    return docs, root / "idx"


def test_search_json(built: tuple[Path, Path]) -> None:
    _, idx = built
    result = runner.invoke(
        app, ["search", "Who founded the mill?", "--index", str(idx), "-k", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["k"] == 2 and len(out["hits"]) == 2
    assert out["tau"] == DEFAULT_TAU
    top = out["hits"][0]
    assert top["passage"]["source"].endswith("mill.md")
    assert set(top) == {"rank", "score", "dense", "bm25", "prior", "rank_score", "passage"}
    assert out["bm25_weight"] == DEFAULT_BM25_WEIGHT
    assert top["score"] == pytest.approx(top["dense"] + DEFAULT_BM25_WEIGHT * top["bm25"])


def test_search_text_and_methods(built: tuple[Path, Path]) -> None:
    _, idx = built
    for method in ("dense", "bm25", "hybrid"):
        result = runner.invoke(
            app, ["search", "Tesla coil", "--index", str(idx), "--method", method]
        )
        assert result.exit_code == 0, result.output
        assert result.output.startswith("[1] p=")


def test_info(built: tuple[Path, Path]) -> None:
    _, idx = built
    result = runner.invoke(app, ["info", "--index", str(idx), "--json"])
    info = json.loads(result.output)
    assert info["documents"] == 3 and info["passages"] == 3
    assert info["encoder"]["dim"] == 384 and info["vector_index"]["kind"] == "flat"
    text = runner.invoke(app, ["info", "--index", str(idx)]).output
    assert "all-MiniLM-L6-v2" in text and "MB on disk" in text


def test_reindex_and_rm(built: tuple[Path, Path], tmp_path: Path) -> None:
    docs, idx = built
    result = runner.invoke(app, ["index", str(docs), "--index", str(idx), "--json"])
    assert json.loads(result.output)["passages_encoded"] == 0
    extra = tmp_path / "extra.txt"
    extra.write_text("An extra document about lighthouses.")
    assert runner.invoke(app, ["index", str(extra), "--index", str(idx)]).exit_code == 0
    result = runner.invoke(app, ["rm", str(extra), "--index", str(idx)])
    assert result.exit_code == 0 and "removed 1 file" in result.output


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mixrag.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "q", "--index", "/nonexistent/idx"], "does not exist"),
        (["search", "q", "--index", "{idx}", "-k", "0"], "positive integer or 'all'"),
        (
            ["search", "q", "--index", "{idx}", "--method", "magic"],
            "retrieval method must be one of",
        ),
        (["search", "  ", "--index", "{idx}"], "question must be a non-empty string"),
        (["index", "/nonexistent/docs", "--index", "{idx}"], "no such file or folder"),
        (["index", "{docs}", "--index", "{idx}", "--words", "50"], "chunking.words"),
        (["rm", "/nonexistent/x.txt", "--index", "{idx}"], "not in the index"),
        (["search", "x", "--index", "{idx}", "--store", "postgresql://h/db"], "not both"),
        (["search", "x"], "give --index"),
        (["search", "x", "--store", "mysql://h/db"], "must be a postgresql:// URL"),
        (["info", "--store", "postgresql://h/db#no-dashes"], "schema name"),
        (["ask", "q", "--index", "{idx}", "--device", "cuda"], "'cuda' is not available"),
        (["ask", "q", "--index", "{idx}", "--device", "tpu"], "device 'tpu' is not one of"),
        (["score", "q", "a", "--index", "{idx}", "--dtype", "int8"], "dtype 'int8' is not one"),
        (["warm", "--index", "{idx}", "--device", "mps"], "'mps' is not available"),
        (["warm"], "give --index"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(
    built: tuple[Path, Path], args: list[str], message: str
) -> None:
    docs, idx = built
    proc = run_cli(*[a.format(idx=idx, docs=docs) for a in args])
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mixrag: error:"), proc.stderr
    assert message in lines[0]


@pytest.mark.slow  # indexes with the real encoder
def test_bad_file_is_named_and_exit_1(tmp_path: Path) -> None:
    docs = make_docs(tmp_path / "d")
    (docs / "broken.jsonl").write_text("{nope\n")
    proc = run_cli("index", str(docs), "--index", str(tmp_path / "idx"))
    assert proc.returncode == 1
    assert "broken.jsonl" in proc.stdout and "3 new" in proc.stdout


@pytest.mark.slow  # indexes with the real encoder
def test_eval_builds_the_index_from_the_dataset_and_reports(tmp_path: Path) -> None:
    from tests.tiny_squad import SQUAD

    data = tmp_path / "tiny.json"
    data.write_text(json.dumps(SQUAD))
    args = ["eval", "--dataset", str(data), "--build-index", str(tmp_path / "idx")]
    args += ["--modes", "none", "--retrieval", "dense,bm25,hybrid", "--recall-k", "1,2"]
    args += ["--out", str(tmp_path / "report"), "--no-progress", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out["retrieval"]) == {"dense", "bm25", "hybrid"}
    assert out["dataset"]["evaluated"] == 4 and out["answers"] == {}
    assert out["command"].startswith("mixrag ")
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "| `bm25`" in summary
    assert (tmp_path / "report" / "plots" / "recall_at_k.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--modes", "rag-seq"], "'rag-seq'"),
        (["-k", "five"], "-k must be comma-separated integers"),
        (["--retrieval", "sparse"], "'sparse'"),
        (["--min-relevance", "high"], "--min-relevance must be a number or 'off', got 'high'"),
        (["--beams", "0"], "num_beams must be >= 1, got 0"),
        (["--build-index", "{tmp}/idx2", "--dataset", "{tmp}/q.jsonl"], "needs a SQuAD-layout"),
    ],
)
def test_eval_mistakes_are_one_line_and_exit_2(
    built: tuple[Path, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    _, idx = built
    (tmp_path / "q.jsonl").write_text('{"question": "Who?", "answers": ["me"]}\n')
    base = ["eval", "--dataset", str(tmp_path / "q.jsonl"), "--out", str(tmp_path / "r")]
    if "--build-index" not in args:
        base += ["--index", str(idx)]
    proc = run_cli(*base, *[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mixrag: error:"), proc.stderr
    assert message in lines[0]


def test_store_commands_end_to_end(pg_store_url: str, tmp_path: Path) -> None:
    """index / search / info / rm against PostgreSQL, as against a folder."""
    docs = make_docs(tmp_path / "docs")
    store = ["--store", pg_store_url]
    result = runner.invoke(app, ["index", str(docs), *store, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "3 new" in result.output
    result = runner.invoke(app, ["search", "Who founded the mill?", *store, "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["hits"][0]["passage"]["source"].endswith("mill.md")
    info = json.loads(runner.invoke(app, ["info", *store, "--json"]).output)
    assert info["passages"] == 3 and info["vector_index"]["kind"] == "pgvector-hnsw"
    assert info["path"].endswith("#" + pg_store_url.rsplit("#", 1)[1])
    result = runner.invoke(app, ["rm", str(docs / "tesla.txt"), *store])
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(app, ["info", *store, "--json"]).output)
    assert info["files"] == 2
    result = runner.invoke(app, ["index", str(docs), *store, "--index-kind", "ivfpq"])
    assert result.exit_code != 0 and "FAISS structure" in str(result.exception)


def test_dev_change_names_the_figures_both_evaluations_hold() -> None:
    from mixrag.cli.format import dev_change

    start = {"recall@1": 0.5, "recall@5": 0.8264, "mrr": 0.6}
    end = {"em": 46.0, "recall@1": 0.55, "recall@5": 0.835, "mrr": 0.65}
    assert dev_change(start, end) == "R@1 0.500 -> 0.550, R@5 0.826 -> 0.835, MRR 0.600 -> 0.650"
    assert dev_change({"em": 40.0}, {"em": 46.0, "f1": 50.0}) == "EM 40.0 -> 46.0"


@pytest.mark.slow
def test_warm_then_info_and_ask_read_the_blocks(tmp_path: Path) -> None:
    docs = make_docs(tmp_path / "docs")
    idx = tmp_path / "idx"
    assert runner.invoke(app, ["index", str(docs), "--index", str(idx)]).exit_code == 0
    args = ["--index", str(idx), "--model", "smollm2-135m"]
    warm = runner.invoke(app, ["warm", *args, "--no-progress", "--json"])
    assert warm.exit_code == 0, warm.output
    report = json.loads(warm.output)
    assert report["passages"] == report["computed"] == 3
    (space,) = report["usage"]
    assert space["model"] == "smollm2-135m" and space["blocks"] == 3
    again = runner.invoke(app, ["warm", *args, "--no-progress"])
    assert again.exit_code == 0, again.output
    assert "0 blocks computed" in again.output and "3 already there" in again.output
    info = runner.invoke(app, ["info", "--index", str(idx)])
    assert "passage KV smollm2-135m (float32, prompt head" in info.output
    assert "): 3 passages" in info.output
    # --concat adds concat's first-passage blocks, in a space of their own
    with_concat = runner.invoke(app, ["warm", *args, "--concat", "--no-progress", "--json"])
    assert with_concat.exit_code == 0, with_concat.output
    report = json.loads(with_concat.output)
    assert report["computed"] == 3
    by_space = {u["space"]: u["blocks"] for u in report["usage"]}
    assert by_space == {report["spaces"]["passage"]: 3, report["spaces"]["concat"]: 3}
    files = {p: p.stat().st_mtime_ns for p in (idx / "passage-kv").rglob("*.safetensors")}
    for mode in ("rag-sequence", "concat"):
        ask = runner.invoke(
            app, ["ask", "Who founded the mill?", *args, "-k", "2", "--mode", mode, "--json"]
        )
        assert ask.exit_code == 0, ask.output
        assert json.loads(ask.output)["answer"]
    # the blocks were read, none written again
    assert {p: p.stat().st_mtime_ns for p in (idx / "passage-kv").rglob("*.safetensors")} == files
