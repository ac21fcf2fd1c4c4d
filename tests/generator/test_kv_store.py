"""Passage KV blocks on disk beside an index: warm, survive a restart, per model, pruned."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from mixrag.generator import PassageCache, TransformersGenerator
from mixrag.generator.kv_store import KVStore
from mixrag.generator.warming import KVCoverage, cold_hint, kv_coverage, warm_index
from mixrag.index.folder import PASSAGE_KV, Index
from mixrag.rag import RAG, RAGConfig
from mixrag.runs import use_index_kv
from tests.helpers import make_docs

pytestmark = pytest.mark.slow
QUESTION = "In which year was the Riverside Mill founded?"


def _fresh(gen: TransformersGenerator, model: object = None) -> TransformersGenerator:
    """A generator as a restarted process has it: the same weights, an empty memory cache."""
    return TransformersGenerator(
        dataclasses.replace(gen.config, passage_cache_mb=256),
        model=model or gen.model,  # type: ignore[arg-type]
        tokenizer=gen.tokenizer,
        passage_cache=PassageCache(256 * 2**20),
    )


@pytest.fixture
def index(tmp_path: Path, encoder: object) -> Index:
    idx = Index.open(tmp_path / "idx", create=True, encoder=encoder)  # type: ignore[arg-type]
    assert idx.add([make_docs(tmp_path / "docs")]).ok
    return idx


def _files(index: Index) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in index.passage_kv_path.rglob("*.safetensors")}


def test_warm_then_restart_reads_the_blocks_and_answers_the_same(
    index: Index, smollm2: TransformersGenerator
) -> None:
    gen = _fresh(smollm2)
    ticks: list[tuple[int, int]] = []
    report = warm_index(index, gen, batch=2, progress=lambda d, t: ticks.append((d, t)))
    n = index.store.counts()["passages"]
    assert report.passages == report.computed == n and ticks[-1] == (n, n)
    (usage,) = report.usage
    assert usage["blocks"] == n and usage["model"] == "smollm2-135m"
    assert usage["bytes_per_passage"] > 0 and usage["fingerprint"] == gen.weights_fingerprint()
    assert index.info()["passage_kv"][0]["blocks"] == n
    written = _files(index)
    # warming again computes nothing
    assert warm_index(index, gen).computed == 0 and _files(index) == written

    # "restart": an empty memory cache reads every block from disk, computes none
    restarted = _fresh(smollm2)
    use_index_kv(restarted, index)
    rag = RAG(index.retriever(), restarted, RAGConfig(k=3, max_new_tokens=12))
    answer = rag.ask(QUESTION)
    stats = restarted.passage_cache.stats()  # type: ignore[union-attr]
    assert stats.entries == 3 and _files(index) == written
    off = TransformersGenerator(
        dataclasses.replace(smollm2.config, passage_cache_mb=0),
        model=smollm2.model,
        tokenizer=smollm2.tokenizer,
    )
    ref = RAG(index.retriever(), off, RAGConfig(k=3, max_new_tokens=12)).ask(QUESTION)
    assert answer.text == ref.text and answer.logprob == pytest.approx(ref.logprob, abs=1e-4)


def test_warm_concat_fills_the_first_passage_blocks_a_concat_ask_reads(
    index: Index, smollm2: TransformersGenerator
) -> None:
    gen = _fresh(smollm2)
    n = index.store.counts()["passages"]
    report = warm_index(index, gen, batch=2, concat=True)
    spaces = gen.kv_spaces()
    assert report.computed == 2 * n
    assert {u["space"]: u["blocks"] for u in report.usage} == {
        spaces["passage"]: n,
        spaces["concat"]: n,
    }
    written = _files(index)
    assert warm_index(index, gen, concat=True).computed == 0

    # after a restart, a concat ask reads its first passage's block and writes nothing
    restarted = _fresh(smollm2)
    use_index_kv(restarted, index)
    cfg = RAGConfig(k=3, max_new_tokens=12, mode="concat")
    answer = RAG(index.retriever(), restarted, cfg).ask(QUESTION)
    assert _files(index) == written
    off = TransformersGenerator(
        dataclasses.replace(smollm2.config, passage_cache_mb=0),
        model=smollm2.model,
        tokenizer=smollm2.tokenizer,
    )
    ref = RAG(index.retriever(), off, cfg).ask(QUESTION)
    assert answer.text == ref.text and answer.logprob == pytest.approx(ref.logprob, abs=1e-4)


def test_other_weights_never_read_the_blocks(index: Index, smollm2: TransformersGenerator) -> None:
    gen = _fresh(smollm2)
    warm_index(index, gen)
    trained_model = copy.deepcopy(smollm2.model)
    with torch.no_grad():
        trained_model.get_output_embeddings().weight[5, 5] += 1e-2
    trained = _fresh(smollm2, trained_model)
    use_index_kv(trained, index)
    rag = RAG(index.retriever(), trained, RAGConfig(k=3, max_new_tokens=4))
    rag.ask(QUESTION)
    spaces = {u["fingerprint"]: u["blocks"] for u in KVStore(index.passage_kv_path).usage()}
    n = index.store.counts()["passages"]
    # its own space, holding only what it computed; the base model's is untouched
    assert spaces == {gen.weights_fingerprint(): n, trained.weights_fingerprint(): 3}
    # a block whose key does not match (another model's, or damaged) is never returned
    store = KVStore(index.passage_kv_path)
    space = store.spaces()[0]
    pid = next(iter(index.store.passage_ids()))
    assert store.load(space, pid, "not-its-key") is None


def test_coverage_counts_this_generators_blocks_and_hints_until_warm(
    index: Index, smollm2: TransformersGenerator
) -> None:
    gen = _fresh(smollm2)
    use_index_kv(gen, index)
    assert gen.kv_store is not None
    n = index.store.counts()["passages"]
    cold = kv_coverage(index, gen.kv_store, gen.kv_spaces())
    assert cold == KVCoverage(n, 0, 0) and cold.cold == n
    config = dataclasses.replace(gen.config, dtype="bfloat16")
    hint = cold_hint(cold, index.path, "smollm2-135m", config)
    assert hint is not None and f"{n} of {n} passages" in hint
    assert f"mixrag warm --index {index.path} --model smollm2-135m --dtype bfloat16" in hint
    warm_index(index, gen, concat=True)
    warm = kv_coverage(index, gen.kv_store, gen.kv_spaces())
    assert warm == KVCoverage(n, n, n) and cold_hint(warm, index.path, None, config) is None
    assert warm.to_dict() == {"passages": n, "passage_blocks": n, "concat_blocks": n, "cold": 0}
    # other weights (a trained run) find none of them
    trained_model = copy.deepcopy(smollm2.model)
    with torch.no_grad():
        trained_model.get_output_embeddings().weight[5, 5] += 1e-2
    trained = _fresh(smollm2, trained_model)
    use_index_kv(trained, index)
    assert kv_coverage(index, trained.kv_store, trained.kv_spaces()) == KVCoverage(n, 0, 0)
    # without a store (the cache off, or a PostgreSQL index) there is nothing to count
    assert kv_coverage(index, None, gen.kv_spaces()) is None
    assert cold_hint(None, index.path, None, config) is None


def test_eval_notes_a_cold_index_once_and_not_a_warm_one(
    index: Index, smollm2: TransformersGenerator, capsys: pytest.CaptureFixture[str]
) -> None:
    from mixrag.cli.eval_cmd import _note_cold

    gen = _fresh(smollm2)
    use_index_kv(gen, index)
    rag = RAG(index.retriever(), gen, RAGConfig(k=3))
    n = index.store.counts()["passages"]
    _note_cold(index, rag, None, index.path)
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"note: {n} of {n} passages have no KV block") and "\n" not in err
    assert err.endswith(f"`mixrag warm --index {index.path}` computes them all ahead")
    warm_index(index, gen)
    _note_cold(index, rag, None, index.path)
    assert capsys.readouterr().err == ""


def test_the_server_reports_how_warm_its_index_is(
    tmp_path: Path,
    encoder: object,
    smollm2: TransformersGenerator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from mixrag.server.service import Service
    from tests.server.helpers import build_index, small_config

    config = small_config(build_index(tmp_path, encoder))

    def served() -> tuple[dict[str, int], list[str]]:
        caplog.clear()
        gen = _fresh(smollm2)
        gen.use_kv_store(KVStore(config.index / PASSAGE_KV))
        service = Service.open(config, encoder=encoder, generator=gen)  # type: ignore[arg-type]
        try:
            info = service.info()["generator"]["passage_kv"]
        finally:
            service.close()
        return info, [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]

    info, warnings = served()
    assert info == {"passages": 3, "passage_blocks": 0, "concat_blocks": 0, "cold": 3}
    assert any("3 of 3 passages have no KV block" in w for w in warnings), warnings
    with Index.open(config.index, encoder=encoder) as index:  # type: ignore[arg-type]
        warm_index(index, _fresh(smollm2))
    info, warnings = served()
    assert info == {"passages": 3, "passage_blocks": 3, "concat_blocks": 0, "cold": 0}
    assert not any("no KV block" in w for w in warnings), warnings


def test_removing_a_document_drops_its_blocks(index: Index, smollm2: TransformersGenerator) -> None:
    warm_index(index, _fresh(smollm2))
    before = index.store.passage_ids()
    (mill,) = [f.path for f in index.store.files() if f.path.endswith("mill.md")]
    index.remove([mill])
    gone = before - index.store.passage_ids()
    assert gone
    names = {p.stem for p in index.passage_kv_path.rglob("*.safetensors")}
    assert names == index.store.passage_ids() and not names & gone


def test_a_read_only_store_never_fails_an_answer(tmp_path: Path) -> None:
    store = KVStore(tmp_path / "kv", writable=False)
    store.save("s", "p1", "k", torch.zeros(1, 2, 1, 3, 2), {})
    assert not (tmp_path / "kv").exists()
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    store = KVStore(blocked)  # every write fails: logged once, then reading only
    store.save("s", "p1", "k", torch.zeros(1, 2, 1, 3, 2), {})
    assert store.writable is False
    with pytest.raises(ValueError, match="cannot name a file"):
        store.has("s", "../x")


def test_prune_keeps_a_write_in_progress(tmp_path: Path) -> None:
    import os
    import time

    store = KVStore(tmp_path)
    store.save("s", "live", "k", torch.zeros(1, 2, 1, 3, 2), {"model": "m"})
    store.save("s", "dead", "k", torch.zeros(1, 2, 1, 3, 2), {"model": "m"})
    fresh = tmp_path / "s" / ".x.safetensors.1.2.tmp"
    old = tmp_path / "s" / ".y.safetensors.1.2.tmp"
    fresh.write_bytes(b"partial")
    old.write_bytes(b"crashed")
    an_hour_ago = time.time() - 7200
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert store.prune({"live"}) == 1
    assert store.has("s", "live") and not store.has("s", "dead")
    assert fresh.exists() and not old.exists()
