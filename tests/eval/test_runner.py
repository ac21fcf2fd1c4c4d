"""The evaluation runner: the resume cache, and a tiny real run."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from mixrag.echo import echoes_question
from mixrag.errors import MixragError
from mixrag.eval.cache import ResultCache
from mixrag.eval.datasets import load_dataset
from mixrag.eval.metrics import exact_match
from mixrag.eval.runner import EvalConfig, evaluate, fingerprint
from mixrag.generator import TransformersGenerator
from mixrag.index.folder import Index
from mixrag.rag import RAG, RAGConfig

# ---------------------------------------------------------------- resume cache


def test_cache_resumes_and_refuses_another_setup(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    fp = {"generator": {"model": "a"}, "dataset": {"sha256": "1"}}
    with ResultCache(path, fp) as cache:
        cache.put("concat@5", [("q1", {"em": 1}), ("q2", {"em": 0})])
    with ResultCache(path, fp) as cache:
        assert cache.records("concat@5") == {"q1": {"em": 1}, "q2": {"em": 0}}
        assert cache.records("rag-token@5") == {}
    other = {"generator": {"model": "b"}, "dataset": {"sha256": "1"}}
    with pytest.raises(MixragError, match=r"generator\.model: 'a' -> 'b'.*--fresh"):
        ResultCache(path, other)
    with ResultCache(path, other, fresh=True) as cache:
        assert cache.count() == 0


# ---------------------------------------------------------------- a real tiny run


@pytest.mark.slow
def test_tiny_end_to_end_run_and_resume(
    tiny_index: Index,
    tiny_squad: Path,
    smollm2: TransformersGenerator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset = load_dataset(tiny_squad)
    rag = RAG(tiny_index.retriever(), smollm2, RAGConfig(k=2, max_new_tokens=8))
    cfg = EvalConfig(
        ks=(1, 2), retrieval=("dense", "bm25"), recall_ks=(1, 3), batch_size=3, limit=3, seed=1
    )
    seen: list[tuple[str, int]] = []
    first = evaluate(
        tiny_index,
        dataset,
        cfg,
        tmp_path / "r",
        rag,
        progress=lambda p: seen.append((p.phase, p.done)),
    )
    assert set(first["answers"]) == {
        "closed-book@0",
        "concat@1",
        "concat@2",
        "rag-sequence@1",
        "rag-sequence@2",
        "rag-token@1",
        "rag-token@2",
    }
    assert seen[-1] == ("answers", 3 * 7)
    assert first["dataset"]["evaluated"] == 3 and len(first["questions"]) == 3
    for q in first["questions"]:
        assert set(q["retrieval"]) == {"dense", "bm25"}
        for key, a in q["answers"].items():
            assert a["em"] == exact_match(a["prediction"], q["references"])
            assert math.isclose(a["probability"], math.exp(a["logprob"]), rel_tol=1e-9)
            assert len(a["passage_ids"]) == (
                2 if key.endswith("@2") or key == "closed-book@0" else 1
            )
            if key.startswith("rag-"):  # RAG posteriors are always known, so a passage is cited
                assert a["cited"] in a["passage_ids"]
    # every gold paragraph is in this tiny index: retrieval at depth 3 finds it
    assert first["retrieval"]["dense"]["recall"]["3"] == 1.0
    for name in ("results.json", "summary.md", "plots/recall_at_k.png", "plots/reliability.png"):
        assert (tmp_path / "r" / name).is_file(), name
    assert json.loads((tmp_path / "r" / "results.json").read_text())["answers"] == json.loads(
        json.dumps(first["answers"])
    )

    # resume: nothing left to compute, so neither retrieval nor generation may run
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("resumed run recomputed a finished question")

    monkeypatch.setattr(rag, "ask_batch", boom)
    monkeypatch.setattr(rag, "retrieve", boom)
    again = evaluate(tiny_index, dataset, cfg, tmp_path / "r", rag)
    assert again["answers"] == first["answers"] and again["retrieval"] == first["retrieval"]

    # another answering setup is refused rather than mixed in
    rag_tau = RAG(tiny_index.retriever(tau=0.1), smollm2, RAGConfig(k=2, max_new_tokens=8))
    with pytest.raises(MixragError, match="tau"):
        evaluate(tiny_index, dataset, cfg, tmp_path / "r", rag_tau)

    # alternatives: kept in the records when asked for; without them the setup's
    # fingerprint is what it was before the option (older report folders still resume)
    rag_alt = RAG(tiny_index.retriever(), smollm2, RAGConfig(k=2, max_new_tokens=8, alternatives=3))
    assert "alternatives" not in fingerprint(tiny_index, dataset, cfg, rag)["answering"]
    # the echo rule: on by default, in the fingerprint; off, the setup is as before it
    assert fingerprint(tiny_index, dataset, cfg, rag)["answering"]["allow_echo"] is False
    rag_echo = RAG(
        tiny_index.retriever(), smollm2, RAGConfig(k=2, max_new_tokens=8, allow_echo=True)
    )
    assert "allow_echo" not in fingerprint(tiny_index, dataset, cfg, rag_echo)["answering"]
    # the beam width: each mode's default width recorded; --beams 1, as before the default
    assert fingerprint(tiny_index, dataset, cfg, rag)["answering"]["num_beams"] == {
        "rag-sequence": 2,
        "rag-token": 1,
        "concat": 1,
        "closed-book": 1,
    }
    rag_greedy = RAG(tiny_index.retriever(), smollm2, RAGConfig(k=2, max_new_tokens=8, num_beams=1))
    assert fingerprint(tiny_index, dataset, cfg, rag_greedy)["answering"]["num_beams"] == 1
    with pytest.raises(MixragError, match="num_beams"):
        evaluate(tiny_index, dataset, cfg, tmp_path / "r", rag_greedy)
    with pytest.raises(MixragError, match="alternatives"):
        evaluate(tiny_index, dataset, cfg, tmp_path / "r", rag_alt)
    alt_cfg = dataclasses.replace(cfg, modes=("rag-sequence",), ks=(2,))
    out = evaluate(tiny_index, dataset, alt_cfg, tmp_path / "alt", rag_alt)
    before = {q["id"]: q["answers"]["rag-sequence@2"] for q in first["questions"]}
    kept = 0
    for q in out["questions"]:
        a = q["answers"]["rag-sequence@2"]
        assert a["prediction"] == before[q["id"]]["prediction"]
        for text, logprob, em in a.get("alternatives", []):
            assert text != a["prediction"]
            # ranked below the answer, unless the answer passed over an echo of the question
            assert logprob <= a["logprob"] + 1e-6 or echoes_question(text, q["question"])
            assert em == exact_match(text, q["references"])
            kept += 1
    assert kept, "SmolLM2's two passages gave the same answer to all three questions"


def test_interrupted_run_reports_common_questions_then_resumes(
    tiny_index: Index,
    tiny_squad: Path,
    smollm2: TransformersGenerator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset = load_dataset(tiny_squad)
    rag = RAG(tiny_index.retriever(), smollm2, RAGConfig(k=1, max_new_tokens=6))
    cfg = EvalConfig(modes=("closed-book", "rag-token"), ks=(1,), batch_size=1, limit=3, seed=2)
    real = rag.ask_batch
    calls = []

    def interrupt_third(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 3:  # q1 closed-book, q1 rag-token, q2 closed-book, then Ctrl-C
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rag, "ask_batch", interrupt_third)
    part = evaluate(tiny_index, dataset, cfg, tmp_path / "r", rag)
    assert part["partial"] == {"answered": 1, "of": 3}
    # both runs are summarised over the one question both finished, not 2 against 1
    assert [part["answers"][key]["n"] for key in ("closed-book@0", "rag-token@1")] == [1, 1]
    assert part["retrieval"]["combined"]["n"] == 3
    assert "Partial run" in (tmp_path / "r" / "summary.md").read_text()

    monkeypatch.setattr(rag, "ask_batch", real)
    done = evaluate(tiny_index, dataset, cfg, tmp_path / "r", rag)
    assert "partial" not in done
    assert [done["answers"][key]["n"] for key in ("closed-book@0", "rag-token@1")] == [3, 3]
    assert "Partial run" not in (tmp_path / "r" / "summary.md").read_text()


def test_retrieval_metrics_measure_the_given_query_encoder(
    tiny_index: Index, tiny_squad: Path, tmp_path: Path
) -> None:
    """A trained q(x) is what recall@k measures, and its records never mix with another's."""
    import torch

    from mixrag.train.models import QueryEncoder

    dataset = load_dataset(tiny_squad)
    cfg = EvalConfig(modes=(), retrieval=("dense",), recall_ks=(1, 3))
    query = QueryEncoder.copy_of(tiny_index.encoder.load())
    emb = query.model[0].auto_model.embeddings.word_embeddings.weight
    with torch.no_grad():  # a different q(x): the token embeddings shuffled
        emb.copy_(emb[torch.randperm(emb.shape[0], generator=torch.Generator().manual_seed(0))])
    query.model.eval()
    trained = evaluate(tiny_index, dataset, cfg, tmp_path / "t", query_encoder=query)
    own = evaluate(tiny_index, dataset, cfg, tmp_path / "u")
    expected = tiny_index.retriever(query_encoder=query, method="dense").search_batch(
        [q.question for q in dataset.questions], k=3
    )
    got = {q["id"]: q["retrieval"]["dense"]["ids"] for q in trained["questions"]}
    for q, hits in zip(dataset.questions, expected, strict=True):
        assert got[q.id] == [h.passage.id for h in hits]
    untrained = {q["id"]: q["retrieval"]["dense"]["ids"] for q in own["questions"]}
    assert got != untrained
    assert trained["query_encoder"] == query.fingerprint and own["query_encoder"] is None
    with pytest.raises(MixragError, match="query_encoder"):
        evaluate(tiny_index, dataset, cfg, tmp_path / "t")  # the untrained encoder: refused
