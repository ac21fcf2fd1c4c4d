"""``mixrag train`` and ``split-squad``: joint training of q(x) and the generator, and its data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mixrag.cli.options import (
    DeviceOpt,
    IndexOpt,
    ModelOpt,
    ProgressOpt,
    StoreOpt,
    generator_options,
    target,
)
from mixrag.errors import MixragError
from mixrag.train.config import TrainConfig


def train_cmd(
    train: Annotated[
        Path, typer.Option(help="(question, answers) pairs: .jsonl, SQuAD .json[.gz], .tsv.")
    ],
    index: IndexOpt = None,
    store: StoreOpt = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder: checkpoint, history, loss.png.")
    ] = None,
    dev: Annotated[
        Path | None, typer.Option(help="Dev questions, evaluated each epoch or --eval-every.")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this folder.")] = None,
    mode: Annotated[
        str, typer.Option("--mode", "-m", help="rag-sequence or rag-token.")
    ] = TrainConfig.mode,
    k: Annotated[
        int, typer.Option("-k", help="Passages per question while training.")
    ] = TrainConfig.k,
    grad_passages: Annotated[
        int | None,
        typer.Option(
            help="Backpropagate the generator through the top N of the K passages only; "
            "the rest still count in -log p_RAG and in q(x)'s gradient [all K]."
        ),
    ] = TrainConfig.grad_passages,
    model: ModelOpt = None,
    epochs: Annotated[
        int, typer.Option(help="Passes over the training questions.")
    ] = TrainConfig.epochs,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many optimiser steps.")
    ] = TrainConfig.max_steps,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop (with a checkpoint) after this long.")
    ] = TrainConfig.max_minutes,
    lr: Annotated[float, typer.Option(help="Generator learning rate.")] = TrainConfig.lr,
    lr_retriever: Annotated[
        float, typer.Option(help="Query encoder learning rate.")
    ] = TrainConfig.lr_retriever,
    retriever_steps: Annotated[
        int | None,
        typer.Option(
            help="Train q(x) for the first N steps only (its rate decays to 0 there), "
            "then keep it fixed [whole run]."
        ),
    ] = TrainConfig.retriever_steps,
    retriever_patience: Annotated[
        int | None,
        typer.Option(
            help="Early-stop q(x) on --dev: after N evaluations (--eval-every) without a "
            "higher dev recall@k, back to its best weights, fixed from then on [off]."
        ),
    ] = TrainConfig.retriever_patience,
    batch_size: Annotated[
        int, typer.Option(help="Questions per forward/backward pass.")
    ] = TrainConfig.batch_size,
    grad_accum: Annotated[
        int, typer.Option(help="Passes per optimiser step.")
    ] = TrainConfig.grad_accum,
    freeze: Annotated[
        str,
        typer.Option(
            help="Parts held fixed: none, or a comma-separated set of retriever, generator, prior."
        ),
    ] = TrainConfig.freeze,
    update: Annotated[
        str, typer.Option(help="Generator update: lora or full.")
    ] = TrainConfig.generator_update,
    train_layers: Annotated[
        int | None, typer.Option(help="Train only the top N decoder layers.")
    ] = TrainConfig.train_layers,
    label_smoothing: Annotated[
        float, typer.Option(help="Label smoothing epsilon.")
    ] = TrainConfig.label_smoothing,
    autocast: Annotated[
        str,
        typer.Option(
            help="none, or bfloat16: the generator's forward/backward in bfloat16 "
            "(fast on CPUs with AMX / AVX512-BF16; weights stay float32)."
        ),
    ] = TrainConfig.autocast,
    query_dropout: Annotated[
        bool,
        typer.Option(help="Keep the query encoder's dropout on while training."),
    ] = TrainConfig.query_dropout,
    few_shot: Annotated[
        bool, typer.Option(help="Keep the few-shot examples in the prompts.")
    ] = TrainConfig.few_shot,
    tau: Annotated[
        float, typer.Option(help="Prior temperature at step 0: softmax(score / tau).")
    ] = TrainConfig.tau,
    bm25_weight: Annotated[
        float,
        typer.Option(help="w in the prior's score dᵀq + w·bm25 at step 0 (0: the paper's)."),
    ] = TrainConfig.bm25_weight,
    lr_prior: Annotated[
        float, typer.Option(help="Learning rate of the prior's w and tau; 0 keeps them.")
    ] = TrainConfig.lr_prior,
    eval_every: Annotated[
        int | None, typer.Option(help="Dev evaluation every N steps [each epoch].")
    ] = TrainConfig.eval_every,
    eval_limit: Annotated[
        int,
        typer.Option(
            help="Dev questions answered per evaluation (EM/F1); 0: recall only. "
            "Recall uses every dev question."
        ),
    ] = TrainConfig.eval_limit,
    checkpoint_every: Annotated[
        int, typer.Option(help="Steps between checkpoints.")
    ] = TrainConfig.checkpoint_every,
    seed: Annotated[int, typer.Option(help="Data order and initialisation.")] = TrainConfig.seed,
    progress: ProgressOpt = None,
    device: DeviceOpt = "cpu",
    dtype: Annotated[
        str,
        typer.Option(
            help="Generator weights dtype [float32]; on a CPU prefer float32 weights with "
            "--autocast bfloat16 (AdamW on bfloat16 weights loses small updates)."
        ),
    ] = "float32",
) -> None:
    """Train the query encoder and the generator jointly from (question, answer) pairs."""
    from mixrag.cli.progress import TrainBar
    from mixrag.eval.datasets import load_dataset
    from mixrag.index.opening import open_index
    from mixrag.train import load_pairs
    from mixrag.train.trainer import Trainer

    run = resume or out
    if run is None:
        raise MixragError("give --out (a new run folder) or --resume (an existing one)")
    if resume is not None and out is not None and out.resolve() != resume.resolve():
        raise MixragError(f"--out {out} and --resume {resume} differ; give one")
    config = TrainConfig(
        mode=mode,
        k=k,
        grad_passages=grad_passages,
        epochs=epochs,
        max_steps=max_steps,
        max_minutes=max_minutes,
        lr=lr,
        lr_retriever=lr_retriever,
        retriever_steps=retriever_steps,
        retriever_patience=retriever_patience,
        batch_size=batch_size,
        grad_accum=grad_accum,
        freeze=freeze,
        generator_update=update,
        train_layers=train_layers,
        label_smoothing=label_smoothing,
        autocast=autocast,
        query_dropout=query_dropout,
        few_shot=few_shot,
        tau=tau,
        bm25_weight=bm25_weight,
        lr_prior=lr_prior,
        eval_every=eval_every,
        eval_limit=eval_limit,
        checkpoint_every=checkpoint_every,
        seed=seed,
    )
    examples = load_pairs(train)
    dev_data = load_dataset(dev) if dev is not None else None
    options = generator_options(device, dtype)
    generator = None
    if resume is None and options != {"device": "cpu", "dtype": "float32"}:
        from mixrag.runs import new_generator

        generator = new_generator(model, options)
    with open_index(target(index, store)) as idx:
        trainer = Trainer(
            idx, config, run, model=model, generator=generator, resume=resume is not None
        )
        with TrainBar(progress) as bar:
            history = trainer.train(examples, dev_data, progress=bar)
    last = history[-1] if history else {}
    typer.echo(
        f"step {trainer.step}/{trainer.total_steps}, loss {last.get('loss', float('nan')):.3f}; "
        f"checkpoint: {run}/checkpoint, curve: {run}/loss.png"
    )
    from mixrag.cli.format import dev_change

    dev_last = next((h for h in reversed(history) if h.get("dev")), None)
    if trainer.dev_start and dev_last:
        change = dev_change(trainer.dev_start, dev_last["dev"])
        typer.echo(f"dev, untrained -> step {dev_last['step']}: {change}")
    best = trainer.retriever_best
    if best and best.get("value") is not None:
        typer.echo(
            f"q(x) kept from step {best['step']} "
            f"(dev {best.get('metric', f'recall@{config.k}')} {best['value']:.3f})"
        )


def split_cmd(
    dataset: Annotated[Path, typer.Argument(help="A SQuAD v1.1 JSON file (.json or .json.gz).")],
    out: Annotated[Path, typer.Option(help="Folder for train.jsonl and dev.jsonl.")],
    dev_fraction: Annotated[float, typer.Option(help="Share of the articles for dev.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the article draw.")] = 0,
) -> None:
    """Split SQuAD by article: no dev question's article has a question in train."""
    from mixrag.train import split_by_article

    train, dev, counts = split_by_article(dataset, out, dev_fraction, seed)
    typer.echo(
        f"{train}: {counts['questions_train']} questions from {counts['articles_train']} articles\n"
        f"{dev}: {counts['questions_dev']} questions from {counts['articles_dev']} articles"
    )
