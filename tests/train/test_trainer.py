"""Joint training on a tiny index with the real encoder and SmolLM2 (LoRA).

The loss is checked against the inference path (``RAG.score``), one step against the
loss it lowers, gradients against where they may and may not go, and checkpoints by
reloading them through ``RAG.open`` and resuming.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mixrag.errors import IndexMismatchError, MixragError
from mixrag.eval.datasets import load_dataset
from mixrag.generator import TransformersGenerator
from mixrag.index.folder import Index
from mixrag.rag import RAG, RAGConfig
from mixrag.train import TrainConfig, read_checkpoint
from mixrag.train.checkpoint import checkpoint_path
from mixrag.train.trainer import Trainer

pytestmark = pytest.mark.slow

CFG = TrainConfig(k=2, batch_size=2, grad_accum=1, lr=2e-3, lr_retriever=1e-4, warmup_steps=0)


@pytest.fixture(scope="module")
def index(tiny_index: Index) -> Index:
    return tiny_index


@pytest.fixture(scope="module")
def examples(tiny_squad: Path) -> list:  # type: ignore[type-arg]
    return load_dataset(tiny_squad).questions


def _trainer(index: Index, run: Path, **overrides: object) -> Trainer:
    cfg = dataclasses.replace(CFG, **overrides)  # type: ignore[arg-type]
    return Trainer(index, cfg, run, model="smollm2-135m")


def test_loss_is_minus_log_p_rag_of_the_inference_path(
    index: Index, examples: list, tmp_path: Path
) -> None:  # type: ignore[type-arg]
    t = _trainer(index, tmp_path / "run")
    t._set_train(False)  # no dropout: the same function as at inference
    batch = examples[:1]
    for mode in ("rag-sequence", "rag-token"):
        t.config = dataclasses.replace(t.config, mode=mode)
        with torch.no_grad():
            loss, _ = t.loss(batch)
        gen = TransformersGenerator(
            dataclasses.replace(t.generator.config, track_grad=False),
            model=t.model,
            tokenizer=t.generator.tokenizer,
        )
        rag = RAG(index.retriever(), gen, RAGConfig(k=2))
        scored = rag.score(batch[0].question, batch[0].answers[0], mode=mode)
        assert float(loss) == pytest.approx(-scored.logprob, abs=1e-3)


def test_one_step_lowers_the_loss_and_gradients_reach_q_not_d(
    index: Index,
    examples: list,
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    t = _trainer(index, tmp_path / "run")
    batch = examples[:2]
    stored = index.store.vectors(list(range(1, index.store.counts()["passages"] + 1)), index.dim)
    t._set_train(False)
    before, _ = t.loss(batch)
    before.backward()
    assert t.query is not None
    q_grads = [p.grad for p in t.query.parameters() if p.grad is not None]
    assert q_grads and any(float(g.abs().sum()) > 0 for g in q_grads)
    lora = [p for n, p in t.model.named_parameters() if "lora_" in n]
    assert lora and all(p.grad is not None for p in lora)
    frozen = [p for n, p in t.model.named_parameters() if "lora_" not in n]
    assert all(p.grad is None and not p.requires_grad for p in frozen)
    t.optimizer.step()
    t.optimizer.zero_grad()
    with torch.no_grad():
        after, _ = t.loss(batch)
    assert after.item() < before.item()
    again = index.store.vectors(list(range(1, index.store.counts()["passages"] + 1)), index.dim)
    np.testing.assert_array_equal(stored, again)  # d(z) and the index stay fixed


def test_save_load_same_outputs_and_resume(
    index: Index,
    examples: list,  # type: ignore[type-arg]
    tiny_squad: Path,
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    # stops mid-epoch: 1 of 2 batches; a prior temperature other than the default, which
    # the reloaded run must keep
    t = _trainer(index, run, max_steps=1, tau=0.5, lr_prior=0.0)  # the prior kept fixed
    history = t.train(examples)
    assert [h["step"] for h in history] == [1]
    # one loss per question of the step; the step's loss is their mean
    assert len(history[0]["losses"]) == history[0]["examples"]
    assert sum(history[0]["losses"]) / history[0]["examples"] == pytest.approx(history[0]["loss"])
    assert (run / "loss.png").stat().st_size > 1000
    assert (run / "history.jsonl").read_text().count("\n") == 1
    ck = read_checkpoint(checkpoint_path(run))
    assert (ck.step, ck.position, ck.has_query_encoder, ck.has_generator) == (1, 1, True, True)

    q = examples[0]
    gen = TransformersGenerator(
        dataclasses.replace(t.generator.config, track_grad=False),
        model=t.model,
        tokenizer=t.generator.tokenizer,
    )
    live = RAG(index.retriever(query_encoder=t.query, tau=0.5), gen, RAGConfig(k=2))
    loaded = RAG.open(index, model=str(run), config=RAGConfig(k=2), tau=None)
    assert loaded.retriever.config.tau == 0.5
    a, b = live.score(q.question, q.answers[0]), loaded.score(q.question, q.answers[0])
    assert [c.hit.passage.id for c in a.citations] == [c.hit.passage.id for c in b.citations]
    assert b.logprob == pytest.approx(a.logprob, abs=1e-3)
    assert [c.prior for c in b.citations] == pytest.approx([c.prior for c in a.citations], abs=1e-5)

    # mixrag eval --modes none --model RUN: recall@k of the trained q(x), not the index's
    from typer.testing import CliRunner

    from mixrag.cli.main import app

    report = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--dataset",
            str(tiny_squad),
            "--index",
            str(index.path),
            "--model",
            str(run),
            "--modes",
            "none",
            "--recall-k",
            "1,2",
            "--out",
            str(report),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert t.query is not None
    saved = json.loads((report / "results.json").read_text())
    assert saved["query_encoder"] == t.query.fingerprint
    top = live.retriever.search_batch([e.question for e in examples], k=2)
    by_id = {r["id"]: r["retrieval"]["combined"]["ids"] for r in saved["questions"]}
    for e, hs in zip(examples, top, strict=True):
        assert by_id[e.id] == [h.passage.id for h in hs]

    from mixrag.server.config import ServerConfig
    from mixrag.server.service import Service

    served = Service.open(ServerConfig(index=index.path, model=str(run)), encoder=index.encoder)
    try:  # the server answers with the trained q(x) too
        assert served.retriever.query_encoder is not None
        assert served.retriever.config.tau == 0.5
        hits = served.retriever.search(q.question, k=2)
        assert [h.passage.id for h in hits] == [c.hit.passage.id for c in a.citations]
    finally:
        served.close()

    with pytest.raises(MixragError, match="--resume"):
        _trainer(index, run)
    resumed = Trainer(
        index,
        dataclasses.replace(CFG, max_steps=2, tau=0.5),
        run,
        model="smollm2-135m",
        resume=True,
    )
    assert resumed.step == 1 and resumed.position == 1
    history = resumed.train(examples)
    assert [h["step"] for h in history] == [1, 2]
    ck = read_checkpoint(checkpoint_path(run))
    assert (ck.step, ck.epoch, ck.position) == (2, 1, 0)  # the epoch's second batch, then done


def test_the_prior_learns_w_and_tau_and_the_run_answers_with_them(
    index: Index,
    examples: list,  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    """w and tau get the loss's gradient, stay in their set, are saved, and a trained
    run's retriever uses the learned values; lr_prior = 0 keeps them."""
    run = tmp_path / "run"
    t = _trainer(index, run, max_steps=2, lr_prior=0.05)
    start = t.prior.values()
    assert start == pytest.approx({"bm25_weight": CFG.bm25_weight, "tau": CFG.tau})
    with torch.no_grad():  # the step's prior is the retriever's, with w and tau as tensors
        q = t.query_vectors([examples[0].question])
        prepared = t.prepare(examples[:1], q)
    hits = t.index.retriever(tau=CFG.tau).search(examples[0].question, k=CFG.k)
    assert prepared.log_prior.exp()[0].tolist() == pytest.approx([h.prior for h in hits], abs=1e-5)
    history = t.train(examples)
    learned = t.prior.values()
    assert learned["bm25_weight"] != start["bm25_weight"] and learned["tau"] != start["tau"]
    assert learned["bm25_weight"] >= 0 and learned["tau"] > 0
    assert history[-1]["prior"] == learned
    ck = read_checkpoint(checkpoint_path(run))
    assert ck.prior == pytest.approx(learned)
    loaded = RAG.open(index, model=str(run), config=RAGConfig(k=2), tau=None)
    assert loaded.retriever.config.bm25_weight == pytest.approx(learned["bm25_weight"])
    assert loaded.retriever.config.tau == pytest.approx(learned["tau"])
    fixed = _trainer(index, tmp_path / "fixed", max_steps=1, lr_prior=0.0)
    fixed.train(examples)
    assert fixed.prior.values() == pytest.approx(start)


def test_w_learns_from_zero(index: Index, examples: list, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """A run that starts at the paper's score (w = 0) still gets bm25n into the step, so
    w has a gradient: its retrieval at w = 0 is dense, its hits carry both parts."""
    t = _trainer(index, tmp_path / "run", bm25_weight=0.0, lr_prior=0.05, freeze="generator")
    q = t.query_vectors([x.question for x in examples[:2]])
    prepared = t.prepare(examples[:2], q)
    dense_hits = index.retriever(method="dense", bm25_weight=0.0, tau=CFG.tau)
    for x, row in zip(examples[:2], prepared.log_prior.detach().exp(), strict=True):
        hits = dense_hits.search(x.question, k=CFG.k)
        assert row.tolist()[: len(hits)] == pytest.approx([h.prior for h in hits], abs=1e-5)
    loss, _ = t.loss(examples[:2])
    loss.backward()
    grad = t.prior.bm25_weight.grad
    assert grad is not None and float(grad) != 0.0
    reference = index.retriever(method="dense", bm25_weight=0.0, score_parts=True)
    parts = reference.search(examples[0].question, k=CFG.k)
    assert all(h.bm25 is not None and 0.0 <= h.bm25 <= 1.0 for h in parts)
    assert any(h.bm25 for h in parts)


def test_frozen_sides_and_mismatched_index(index: Index, examples: list, tmp_path: Path) -> None:  # type: ignore[type-arg]
    t = _trainer(index, tmp_path / "frozen-gen", freeze="generator", max_steps=1)
    assert all(not p.requires_grad for p in t.model.parameters())
    t.train(examples[:2])
    ck = read_checkpoint(checkpoint_path(tmp_path / "frozen-gen"))
    assert ck.has_query_encoder and not ck.has_generator
    assert not (ck.path / "generator").exists()

    t = _trainer(index, tmp_path / "frozen-ret", freeze="retriever", max_steps=1)
    assert t.query is None
    t.train(examples[:2])
    ck = read_checkpoint(checkpoint_path(tmp_path / "frozen-ret"))
    assert not ck.has_query_encoder and ck.has_generator

    manifest = ck.path / "mixrag-checkpoint.json"
    m = json.loads(manifest.read_text())
    m["index"]["encoder_fingerprint"] = "0" * 16
    manifest.write_text(json.dumps(m))
    with pytest.raises(IndexMismatchError, match="encoder_fingerprint"):
        RAG.open(index, model=str(tmp_path / "frozen-ret"))

    # the prior alone (an ablation): w and tau move, q(x) and p_phi stay the index's
    t = _trainer(index, tmp_path / "prior-only", freeze="retriever,generator", max_steps=1)
    start = t.prior.values()
    assert t.query is None and all(not p.requires_grad for p in t.model.parameters())
    t.train(examples[:2])
    ck = read_checkpoint(checkpoint_path(tmp_path / "prior-only"))
    assert not ck.has_query_encoder and not ck.has_generator
    assert ck.prior == pytest.approx(t.prior.values()) and ck.prior != pytest.approx(start)


def test_train_layers_puts_adapters_in_the_top_layers_only(index: Index, tmp_path: Path) -> None:
    t = _trainer(index, tmp_path / "run", train_layers=2)
    n = t.model.config.num_hidden_layers
    layers = {
        int(name.split(".layers.")[1].split(".")[0])
        for name, p in t.model.named_parameters()
        if p.requires_grad
    }
    assert layers == {n - 2, n - 1}
    # q(x) trains without dropout unless asked: a step retrieves what inference retrieves
    assert t.query is not None
    t._set_train(True)
    assert t.model.training and not t.query.model.training
    t.config = dataclasses.replace(t.config, query_dropout=True)
    t._set_train(True)
    assert t.query.model.training


def test_bfloat16_autocast_keeps_the_objective_and_float32_weights(
    index: Index,
    examples: list,  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    exact = _trainer(index, tmp_path / "fp32")
    fast = _trainer(index, tmp_path / "bf16", autocast="bfloat16")
    batch = examples[:2]
    for t in (exact, fast):
        t._set_train(False)
    with torch.no_grad():
        reference, _ = exact.loss(batch)
    loss, _ = fast.loss(batch)
    # the same objective, computed at bfloat16 precision (8 bits of mantissa)
    assert loss.item() == pytest.approx(reference.item(), rel=0.05)
    loss.backward()
    lora = [p for n, p in fast.model.named_parameters() if "lora_" in n]
    assert lora and all(p.dtype == torch.float32 and p.grad is not None for p in lora)
    assert all(p.grad.dtype == torch.float32 for p in lora if p.grad is not None)
    fast.optimizer.step()
    fast.optimizer.zero_grad()
    with torch.no_grad():
        after, _ = fast.loss(batch)
    assert after.item() < loss.item()


def test_grad_passages_keeps_the_loss_and_q_gradient_exact(
    index: Index,
    examples: list,  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    """Backpropagating the generator through the top N of K changes neither the loss nor
    q(x)'s gradient (they depend on the K likelihoods only), but does change p_phi's."""
    batch = examples[:2]

    def grads(**overrides: object) -> tuple[float, list[torch.Tensor], list[torch.Tensor]]:
        t = _trainer(index, tmp_path / f"run-{len(overrides)}", k=3, **overrides)
        t._set_train(False)
        loss, _ = t.loss(batch)
        loss.backward()
        assert t.query is not None
        q = [p.grad.clone() for p in t.query.parameters() if p.grad is not None]
        lora = [p.grad.clone() for n, p in t.model.named_parameters() if "lora_B" in n]
        return loss.item(), q, lora

    full_loss, full_q, full_lora = grads()
    head_loss, head_q, head_lora = grads(grad_passages=1)
    assert head_loss == pytest.approx(full_loss, rel=1e-5)
    assert len(head_q) == len(full_q) > 0
    for a, b in zip(head_q, full_q, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # p_phi's gradient: passages 2..3 no longer contribute (the seed gives equal adapters)
    assert len(head_lora) == len(full_lora) > 0
    assert not all(torch.allclose(a, b) for a, b in zip(head_lora, full_lora, strict=True))
    with pytest.raises(MixragError, match="grad_passages must be at most k"):
        TrainConfig(k=2, grad_passages=3)


def test_retriever_steps_stops_q_and_dev_recall_is_measured_without_answers(
    index: Index,
    examples: list,  # type: ignore[type-arg]
    tiny_squad: Path,
    tmp_path: Path,
) -> None:
    """q(x) trains for the first ``retriever_steps`` steps (its rate reaching 0 there) and
    then stays fixed while the generator trains on; eval_limit = 0 measures the dev
    recall of the current q(x) at every evaluation without answering."""
    snapshots: list[list[torch.Tensor]] = []
    t = _trainer(
        index,
        tmp_path / "run",
        retriever_steps=1,
        max_steps=3,
        epochs=2,
        eval_every=1,
        eval_limit=0,
    )
    assert t.query is not None
    lora = lambda: [p.detach().clone() for n, p in t.model.named_parameters() if "lora_B" in n]  # noqa: E731
    gen_before = lora()

    def snapshot(_: object) -> None:
        assert t.query is not None
        snapshots.append([p.detach().clone() for p in t.query.parameters()])

    q_before = [p.detach().clone() for p in t.query.parameters()]
    history = t.train(examples, load_dataset(tiny_squad), progress=snapshot)
    assert [h["step"] for h in history] == [1, 2, 3]
    assert not all(torch.equal(a, b) for a, b in zip(q_before, snapshots[0], strict=True))
    for later in snapshots[1:]:  # fixed after step 1: no gradient, rate 0
        assert all(torch.equal(a, b) for a, b in zip(snapshots[0], later, strict=True))
    assert [h["lr"][0] for h in history][1:] == [0.0, 0.0]
    assert history[1]["lr"][1] > 0  # the generator's rate is not
    assert not all(torch.equal(a, b) for a, b in zip(gen_before, lora(), strict=True))
    for h in history:
        measured = {f"{m}@{k}" for m in ("recall", "answer") for k in (1, 2, 5, 20)}
        assert set(h["dev"]) == {*measured, "mrr"}
        assert 0.0 <= h["dev"]["recall@1"] <= h["dev"]["recall@5"] <= 1.0
    # the untrained models were evaluated once before step 1: the curve's step 0
    untrained = _trainer(index, tmp_path / "untrained", eval_limit=0)
    assert t.dev_start == untrained.evaluate(load_dataset(tiny_squad))
    manifest = json.loads((checkpoint_path(t.run_dir) / "mixrag-checkpoint.json").read_text())
    assert manifest["dev_start"] == t.dev_start
    answered = t.evaluate(load_dataset(tiny_squad), limit=2)  # EM / F1 on 2 of them too
    assert {k: v for k, v in answered.items() if k not in ("em", "f1")} == history[-1]["dev"]
    assert 0.0 <= answered["em"] <= answered["f1"] <= 100.0

    # the generator and the prior frozen: nothing trains after q(x) stops, the run ends
    t = _trainer(
        index, tmp_path / "q-only", freeze="generator,prior", retriever_steps=1, max_steps=3
    )
    assert [h["step"] for h in t.train(examples)] == [1]
    with pytest.raises(MixragError, match="retriever_steps=2 trains q"):
        TrainConfig(freeze="retriever", retriever_steps=2)
    with pytest.raises(MixragError, match="eval_limit must be a non-negative integer"):
        TrainConfig(eval_limit=-1)


def test_retriever_patience_goes_back_to_the_best_q_and_resumes(
    index: Index,
    examples: list,  # type: ignore[type-arg]
    tiny_squad: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Early stopping of q(x) on dev recall@k: the weights of the best evaluation come
    back after ``patience`` evaluations without a higher one, and q(x) stays fixed (also
    across a resume) while the generator trains on."""
    # dev recall@2 by evaluation: untrained 0.5, then 0.75 (best, step 1), 0.75, 0.5
    scripted = iter([0.5, 0.75, 0.75, 0.5])
    monkeypatch.setattr(
        Trainer,
        "evaluate",
        lambda self, dev, limit=None: {"recall@2": next(scripted, 0.0), "recall@5": 0.0},
    )
    run = tmp_path / "run"
    t = _trainer(
        index, run, retriever_patience=2, eval_every=1, eval_limit=0, max_steps=3, epochs=2
    )
    assert t.query is not None
    weights: list[list[torch.Tensor]] = []
    t.train(
        examples,
        load_dataset(tiny_squad),
        progress=lambda _: weights.append([p.detach().clone() for p in t.query.parameters()]),  # type: ignore[union-attr]
    )
    assert t.retriever_best == {"metric": "recall@2", "value": 0.75, "step": 1, "bad": 2}
    assert t.retriever_stopped_at == 3
    assert t.dev_start == {"recall@2": 0.5, "recall@5": 0.0}  # the first evaluation
    assert not all(torch.equal(a, b) for a, b in zip(weights[0], weights[1], strict=True))
    final = [p.detach() for p in t.query.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(weights[0], final, strict=True))  # step 1's
    assert [h["query_trained"] for h in t.history] == [True, True, True]

    resumed = Trainer(index, dataclasses.replace(t.config, max_steps=4), run, resume=True)
    assert resumed.retriever_stopped_at == 3 and not resumed.trains_query
    assert resumed.dev_start == t.dev_start  # kept, not measured again
    assert resumed.query is not None
    for a, b in zip(final, resumed.query.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach())
    history = resumed.train(examples, load_dataset(tiny_squad))
    assert history[-1]["step"] == 4 and history[-1]["query_trained"] is False

    # the run ends before patience runs out: q(x) ends with its best weights all the same
    scripted = iter([0.5, 0.75, 0.6])
    t = _trainer(
        index, tmp_path / "ends", retriever_patience=5, eval_every=1, eval_limit=0, max_steps=2
    )
    assert t.query is not None
    weights.clear()
    t.train(
        examples,
        load_dataset(tiny_squad),
        progress=lambda _: weights.append([p.detach().clone() for p in t.query.parameters()]),  # type: ignore[union-attr]
    )
    assert t.retriever_best == {"metric": "recall@2", "value": 0.75, "step": 1, "bad": 1}
    assert t.retriever_stopped_at == 2 and not t.trains_query
    final = [p.detach() for p in t.query.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(weights[0], final, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(weights[1], final, strict=True))
    saved = Trainer(index, t.config, tmp_path / "ends", resume=True)
    assert saved.query is not None and saved.retriever_stopped_at == 2
    for a, b in zip(final, saved.query.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach())

    with pytest.raises(MixragError, match="needs eval_every"):
        TrainConfig(retriever_patience=2)
    with pytest.raises(MixragError, match="needs a dev set"):
        _trainer(index, tmp_path / "no-dev", retriever_patience=1, eval_every=1).train(examples)


def test_cli_trains_with_a_dev_set_of_plain_question_answer_pairs(
    index: Index, tiny_squad: Path, tmp_path: Path
) -> None:
    """The paper's setting: dev lines hold only question and answers (no gold passage).
    The dev evaluation reports EM / F1 and answer-in-top-K, early stopping of q(x) uses
    answer@K and says so, and nothing expects recall (it crashed the progress line)."""
    from typer.testing import CliRunner

    from mixrag.cli.main import app

    pairs = [
        {"question": q.question, "answers": list(q.answers)}
        for q in load_dataset(tiny_squad).questions
    ]
    train, dev = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    train.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    dev.write_text("".join(json.dumps(p) + "\n" for p in pairs[:2]))
    run = tmp_path / "run"
    args = (
        f"train --index {index.path} --train {train} --dev {dev} --out {run} "
        "--model smollm2-135m -k 2 --max-steps 2 --batch-size 1 --grad-accum 1 "
        "--eval-every 1 --eval-limit 1 --retriever-patience 1 --no-progress"
    )
    result = CliRunner().invoke(app, args.split())
    assert result.exit_code == 0, result.output
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    dev_figures = history[-1]["dev"]
    assert {"em", "f1", "answer@2", "answer@5"} <= set(dev_figures)
    assert not any(key.startswith(("recall@", "mrr")) for key in dev_figures)
    best = [h["retriever_best"] for h in history if "retriever_best" in h]
    assert best and all(b["metric"] == "answer@2" for b in best)
    assert "dev EM" in result.output and "A@5" in result.output
    assert "answer@2" in result.output  # which figure kept q(x)
    assert (run / "loss.png").stat().st_size > 0


def test_same_seed_same_run_and_the_callers_random_state_untouched(
    index: Index,
    examples: list,  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    """Adapter initialisation and dropout draw from the run's own stream (mixrag.train.rng):
    the same seed trains the same models, a resumed run continues the stream where the
    checkpoint left it, another seed draws other dropout masks, and constructing or
    running a Trainer leaves the process-wide random state as it was."""
    import random

    torch_state, py_state = torch.get_rng_state(), random.getstate()
    np_state = np.random.get_state()
    # (the paper's dense prior: on three passages BM25 makes it near one-hot, and the
    # query encoder's dropout would then leave the loss unchanged)
    noisy = {
        "lora_dropout": 0.2,
        "query_dropout": True,
        "batch_size": 1,
        "max_steps": 2,
        "bm25_weight": 0.0,
    }
    straight = _trainer(index, tmp_path / "straight", **noisy)
    straight.train(examples[:2])
    halted = _trainer(index, tmp_path / "halted", **{**noisy, "max_steps": 1})
    halted.train(examples[:2])
    resumed = Trainer(index, straight.config, tmp_path / "halted", resume=True)
    resumed.train(examples[:2])
    assert [h["step"] for h in resumed.history] == [1, 2]
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert a["losses"] == pytest.approx(b["losses"], rel=1e-6)
    lora = lambda t: [p.detach() for n, p in t.model.named_parameters() if "lora_" in n]  # noqa: E731
    for a, b in zip(lora(straight), lora(resumed), strict=True):
        torch.testing.assert_close(a, b)
    other = _trainer(index, tmp_path / "other", **{**noisy, "max_steps": 1, "seed": 1})
    other.train(examples[:2])
    assert other.history[0]["loss"] != pytest.approx(straight.history[0]["loss"], rel=1e-6)

    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state
    now = np.random.get_state()
    assert now[0] == np_state[0] and np.array_equal(now[1], np_state[1]) and now[2:] == np_state[2:]
