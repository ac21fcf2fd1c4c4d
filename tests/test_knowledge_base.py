"""KnowledgeBase, the Python entry point: open/create, add, search, ask, score, remove.

The first tests load no model (what is checked before anything loads); the rest share
one index with the session's encoder and SmolLM2, and compare with the command line.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mixrag.answer import RAGConfig
from mixrag.cli.main import app
from mixrag.encoders.sentence import SentenceTransformerEncoder
from mixrag.errors import IndexMismatchError, MixragError, NotAnIndexError
from mixrag.generator.hf import TransformersGenerator
from mixrag.index.config import IndexConfig
from mixrag.index.folder import Index
from mixrag.ingest.chunking import ChunkConfig
from mixrag.knowledge_base import KnowledgeBase, KnowledgeBaseConfig, path_list
from tests.helpers import make_docs

QUESTION = "In which year was the Riverside Mill founded?"

# -- no model loads --------------------------------------------------------------------


def test_a_missing_index_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "idx"
    with pytest.raises(NotAnIndexError, match=re.escape(f"{missing} does not exist")):
        KnowledgeBase.open(missing)
    assert not missing.exists()


def test_create_then_open_and_the_index_config_check(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    small = IndexConfig(chunking=ChunkConfig(words=50))
    with KnowledgeBase.open(target, create=True, index_config=small) as kb:
        assert isinstance(kb.index, Index) and kb.index.config.chunking.words == 50
        assert kb.documents() == [] and kb.info()["passages"] == 0
        assert kb.search("anything at all") == []  # an empty index: no hits, no encoder
    with KnowledgeBase.open(str(target)) as kb:  # a str or a Path, no create needed now
        assert kb.index.config.chunking.words == 50
    with pytest.raises(IndexMismatchError, match=r"chunking\.words: index has 50, asked for 100"):
        KnowledgeBase.open(target, index_config=IndexConfig())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "magic"}, "retrieval method must be one of .* got 'magic'"),
        ({"tau": 0.0}, "tau must be > 0, got 0.0"),
        ({"device": "tpu"}, "device 'tpu' is not one of"),
        ({"dtype": "int8"}, "dtype 'int8' is not one of"),
        ({"passage_cache_mb": -5}, "passage_cache_mb must be a non-negative integer"),
        ({"model": " "}, "model must name"),
    ],
)
def test_bad_options_are_named_before_the_index_opens(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(MixragError, match=message):
        KnowledgeBase.open(tmp_path / "idx", create=True, **options)  # type: ignore[arg-type]
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"mode": "magic"}, "mode must be one of rag-sequence, .* got 'magic'"),
        ({"k": 0}, "k must be a positive integer or 'all', got 0"),
        ({"k": "some"}, "k must be a positive integer or 'all', got 'some'"),
        ({"beams": 0}, "num_beams must be >= 1, got 0"),
        ({"decoding": "slow"}, "sequence_decoding must be one of .* got 'slow'"),
        ({"method": "sparse"}, "retrieval method must be one of .* got 'sparse'"),
        ({"min_confidence": 2.0}, r"min_confidence must be a probability in \[0, 1\], got 2\.0"),
        ({"min_relevance": "never"}, "min_relevance must be a number or 'off', got 'never'"),
    ],
)
def test_bad_ask_arguments_are_named_before_a_model_loads(
    tmp_path: Path, call: dict[str, object], message: str
) -> None:
    # a model that does not exist: reaching it would fail with another message
    with KnowledgeBase.open(tmp_path / "idx", create=True, model=str(tmp_path / "none")) as kb:
        with pytest.raises(MixragError, match=message):
            kb.ask(QUESTION, **call)  # type: ignore[arg-type]
        with pytest.raises(MixragError, match=message):
            kb.rag(**call)  # type: ignore[arg-type]


def test_asking_an_empty_index_says_so(tmp_path: Path) -> None:
    with KnowledgeBase.open(tmp_path / "idx", create=True, model="smollm2-135m") as kb:
        with pytest.raises(MixragError, match="is the index empty"):
            kb.ask(QUESTION)
        with pytest.raises(MixragError, match="non-empty"):
            kb.score(QUESTION, "  ")


def test_a_model_and_a_generator_are_not_both_given(tmp_path: Path) -> None:
    generator = TransformersGenerator()  # not loaded
    index = Index.open(tmp_path / "idx", create=True)
    with pytest.raises(MixragError, match="not both \\(model='smollm2-135m'\\)"):
        KnowledgeBase(index, KnowledgeBaseConfig(model="smollm2-135m"), generator=generator)
    kb = KnowledgeBase(index, generator=generator)
    assert kb.generator is generator and kb.tau == pytest.approx(0.05)
    kb.close()


def test_removing_what_the_index_does_not_hold_is_named(tmp_path: Path) -> None:
    with (
        KnowledgeBase.open(tmp_path / "idx", create=True) as kb,
        pytest.raises(MixragError, match=r"not in the index: /nowhere/x\.txt"),
    ):
        kb.remove("/nowhere/x.txt")


def test_one_path_or_several() -> None:
    assert path_list("docs") == ["docs"]  # one path, not its letters
    assert path_list(Path("a") / "b.md") == ["a/b.md"]
    assert path_list(["x", Path("y")]) == ["x", "y"]


# -- with the session's encoder and SmolLM2 ---------------------------------------------


@pytest.fixture(scope="module")
def kb(
    tmp_path_factory: pytest.TempPathFactory,
    encoder: SentenceTransformerEncoder,
    smollm2: TransformersGenerator,
) -> KnowledgeBase:
    root = tmp_path_factory.mktemp("kb")
    base = KnowledgeBase.open(
        root / "idx",
        create=True,
        encoder=encoder,
        generator=smollm2,
        answering=RAGConfig(k=3, max_new_tokens=12),
    )
    report = base.add(make_docs(root / "docs"))
    assert report.ok and len(report.added) == 3
    return base


def test_add_documents_and_remove(kb: KnowledgeBase, tmp_path: Path) -> None:
    docs = Path(kb.documents()[0].path).parent
    assert set(kb.add(docs).unchanged) == {f.path for f in kb.documents()}
    extra = tmp_path / "lighthouse.txt"
    extra.write_text("The Bell Rock Lighthouse stands on a reef off the coast of Angus.")
    where = str(extra.resolve())
    report = kb.add([extra])
    assert report.added == [where] and report.passages_added == 1
    record = next(f for f in kb.documents() if f.path == where)
    assert record.documents == 1 and record.passages == 1
    assert kb.search("Which lighthouse stands on a reef?", k=1)[0].passage.source == where
    assert kb.remove(extra) == [where]
    assert where not in [f.path for f in kb.documents()] and len(kb.documents()) == 3
    assert all(h.passage.source != where for h in kb.search("lighthouse reef", k="all"))


def test_add_names_a_missing_path(kb: KnowledgeBase, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(MixragError, match=re.escape(f"no such file or folder: {missing}")):
        kb.add(missing)


def test_search_k_and_methods(kb: KnowledgeBase) -> None:
    hits = kb.search(QUESTION)  # the configured K = 3
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].passage.source.endswith("mill.md")
    assert sum(h.prior for h in hits) == pytest.approx(1.0, abs=1e-5)
    assert [h.rank for h in kb.search(QUESTION, k=1)] == [1]
    assert len(kb.search(QUESTION, k="all")) == kb.info()["passages"]
    for method in ("bm25", "hybrid"):
        found = kb.search(QUESTION, k=2, method=method)
        assert found[0].passage.source.endswith("mill.md")
        # every method's prior is the dense one over its own hits
        assert sum(h.prior for h in found) == pytest.approx(1.0, abs=1e-5)


def test_ask_answers_with_citations(kb: KnowledgeBase) -> None:
    answer = kb.ask(QUESTION)
    assert answer.mode == "rag-sequence" and "1901" in answer.text
    assert len(answer.citations) == 3
    best = max(answer.citations, key=lambda c: c.posterior or 0.0)
    assert best.hit.passage.source.endswith("mill.md")
    assert sum(c.posterior or 0.0 for c in answer.citations) == pytest.approx(1.0, abs=1e-5)
    # the relevance test: configured by default, "off" per call
    assert kb.rag().config.min_relevance == kb.config.answering.min_relevance
    assert kb.rag(min_relevance="off").config.min_relevance is None
    assert kb.rag(min_relevance=0.1).config.min_relevance == 0.1


def test_score_is_the_mixture_of_the_per_passage_terms(kb: KnowledgeBase) -> None:
    scored = kb.score(QUESTION, "1901", k=2)
    assert scored.text == "1901" and len(scored.citations) == 2
    terms = [
        math.log(c.prior) + (-math.inf if c.logprob is None else c.logprob)
        for c in scored.citations
    ]
    assert scored.logprob == pytest.approx(math.log(sum(math.exp(t) for t in terms)), abs=1e-4)
    posteriors = [math.exp(t - scored.logprob) for t in terms]
    assert [c.posterior for c in scored.citations] == pytest.approx(posteriors, abs=1e-4)
    assert kb.score(QUESTION, "1901", mode="concat", k=2).mode == "concat"


def test_the_cli_gives_the_same_hits_and_answer(kb: KnowledgeBase) -> None:
    runner = CliRunner()
    idx = str(kb.index.location)
    searched = runner.invoke(app, ["search", QUESTION, "--index", idx, "-k", "3", "--json"])
    assert searched.exit_code == 0, searched.output
    cli_hits = json.loads(searched.output)["hits"]
    api_hits = [h.to_dict() for h in kb.search(QUESTION, k=3)]
    assert [h["passage"] for h in cli_hits] == [h["passage"] for h in api_hits]
    assert [h["prior"] for h in cli_hits] == pytest.approx([h["prior"] for h in api_hits])

    args = ["--index", idx, "--model", "smollm2-135m", "-k", "3", "--max-new-tokens", "12"]
    asked = runner.invoke(app, ["ask", QUESTION, *args, "--mode", "rag-token", "--json"])
    assert asked.exit_code == 0, asked.output
    cli = json.loads(asked.output)
    api = kb.ask(QUESTION, mode="rag-token").to_dict()
    assert cli["answer"] == api["answer"] and cli["tokens"] == api["tokens"]
    assert cli["logprob"] == pytest.approx(api["logprob"], abs=1e-4)
    assert [p["passage"]["id"] for p in cli["passages"]] == [
        p["passage"]["id"] for p in api["passages"]
    ]
    assert [p["posterior"] for p in cli["passages"]] == pytest.approx(
        [p["posterior"] for p in api["passages"]], abs=1e-4
    )


def test_a_postgres_store_is_opened_the_same_way(
    pg_store_url: str, tmp_path: Path, encoder: SentenceTransformerEncoder
) -> None:
    docs = make_docs(tmp_path / "docs")
    with KnowledgeBase.open(pg_store_url, create=True, encoder=encoder) as kb:
        assert kb.add(docs).ok
        assert kb.search(QUESTION, k=1)[0].passage.source.endswith("mill.md")
        assert len(kb.documents()) == 3
        kb.remove(docs / "mill.md")
        assert len(kb.documents()) == 2
