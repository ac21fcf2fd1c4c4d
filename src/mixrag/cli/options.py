"""Options several commands share, and the checks that turn them into library arguments.

The ``Annotated`` aliases keep one spelling and help text per option across commands;
the helpers raise :class:`~mixrag.errors.MixragError` for a bad value, which
:func:`mixrag.cli.main.main` prints as one line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from mixrag.errors import MixragError
from mixrag.retriever.retriever import DEFAULT_BM25_WEIGHT, DEFAULT_TAU

IndexOpt = Annotated[Path | None, typer.Option("--index", "-i", help="Index folder.")]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="A PostgreSQL store instead of an index folder: postgresql://user@host/db"
        "\\[#schema] (needs mixrag\\[postgres] and pgvector on the server).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
ProgressOpt = Annotated[bool | None, typer.Option("--progress/--no-progress")]

MethodOpt = Annotated[
    str,
    typer.Option(
        help="Retrieval: combined (dense and BM25 candidates ranked by the prior's score "
        "dᵀq + w·bm25), dense, bm25 or hybrid (reciprocal-rank fusion)."
    ),
]
Bm25WeightOpt = Annotated[
    float | None,
    typer.Option(
        "--bm25-weight",
        help=f"w in the prior's score dᵀq + w·bm25 (0: the paper's dense score) "
        f"[{DEFAULT_BM25_WEIGHT}, or a training run's own].",
    ),
]
TauOpt = Annotated[
    float | None,
    typer.Option(
        help=f"Prior temperature: softmax(score / tau) [{DEFAULT_TAU}, or a training run's own]."
    ),
]
ModeOpt = Annotated[
    str, typer.Option("--mode", "-m", help="rag-sequence, rag-token, concat or closed-book.")
]
AnswerKOpt = Annotated[
    str | None,
    typer.Option(
        "-k",
        help="Passages in the mixture (K), or 'all' \\[the mode's measured best: 5, concat 3].",
        show_default=False,
    ),
]
DefaultKOpt = Annotated[
    int | None,
    typer.Option(
        "-k",
        help="Default K of asks that give none \\[the mode's measured best: 5, concat 3].",
        show_default=False,
    ),
]
MinConfidenceOpt = Annotated[
    float,
    typer.Option(
        help="Least p(y|x) of an answer the indexed documents support; below it the answer "
        "is shown as not found."
    ),
]
MinRelevanceOpt = Annotated[
    str,
    typer.Option(
        help="Least relevance max_j d(z_j)·q(x) of a supported answer: some passage must be "
        "about the question, else the answer is shown as not found; 'off' to skip the test.",
    ),
]


def relevance_threshold(value: str) -> float | None:
    """``--min-relevance``: a finite number, or None for ``off``; else a MixragError."""
    if value.strip().lower() in ("off", "none"):
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise MixragError(f"--min-relevance must be a number or 'off', got {value!r}")
    return number


BeamsOpt = Annotated[
    int | None,
    typer.Option(
        help="Beam width (per passage for RAG-Sequence); 1 = greedy "
        "[2 for rag-sequence, else 1; 1 with --generator-url]."
    ),
]
AllowEchoOpt = Annotated[
    bool,
    typer.Option(
        "--allow-echo",
        help="Let RAG-Sequence answer with a phrase made only of the question's words "
        "(by default its other candidates rank first).",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="Generator: smollm2-135m, qwen2.5-0.5b, or a model folder."),
]
DeviceOpt = Annotated[
    str,
    typer.Option(help="Generator device: cpu, cuda, cuda:N, mps, or auto (the first present)."),
]
DtypeOpt = Annotated[
    str,
    typer.Option(
        help="Generator dtype: float32 (exact log-probs), bfloat16 (2-3x faster on CPUs "
        "with AMX), float16, or auto (bfloat16 where it is fast)."
    ),
]
CacheOpt = Annotated[
    int,
    typer.Option(
        help="Memory for the passage KV cache, MiB (0: off); blocks beyond it are read "
        "from the index folder's passage-kv/ (mixrag warm) or computed again."
    ),
]

GeneratorUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--generator-url",
        help="Run the generator on a vLLM server: its OpenAI-compatible base URL, e.g. "
        "http://host:8000/v1 (the tokeniser stays --model's; rag-token is refused).",
    ),
]
GeneratorKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--generator-api-key",
        envvar="MIXRAG_GENERATOR_API_KEY",
        help="The vLLM server's API key (vllm serve --api-key).",
        show_default=False,
    ),
]
ServedModelOpt = Annotated[
    str | None,
    typer.Option(
        "--served-model",
        help="The model name on the vLLM server (a LoRA adapter's for a trained run); "
        "default: the one it serves, or the one serving the run's weights.",
    ),
]


def remote_config(url: str | None, api_key: str | None, served_model: str | None) -> Any:
    """The :class:`~mixrag.generator.vllm_client.VLLMConfig` the generator-server options
    ask for, or None (the generator runs in process)."""
    if url is None:
        if served_model is not None:
            raise MixragError("--served-model needs --generator-url")
        return None
    from mixrag.generator.vllm_client import VLLMConfig

    return VLLMConfig(url, api_key=api_key, served_model=served_model)


def target(index: Path | None, store: str | None) -> str | Path:
    """The index an option pair names: a folder (--index) or a PostgreSQL store (--store)."""
    from mixrag.store.pg_url import is_postgres_url

    if index is not None and store is not None:
        raise MixragError("give --index FOLDER or --store postgresql://..., not both")
    if store is not None:
        if not is_postgres_url(store):
            raise MixragError(f"--store must be a postgresql:// URL, got {store!r}")
        return store
    if index is None:
        raise MixragError("give --index FOLDER (or --store postgresql://...)")
    return index


def generator_options(device: str, dtype: str, cache_mb: int | None = None) -> dict[str, Any]:
    """GeneratorConfig fields from --device / --dtype / --passage-cache-mb, checked now
    (:func:`mixrag.runs.generator_options`)."""
    from mixrag.runs import generator_options as checked

    return checked(device, dtype, cache_mb)


def echo_json(obj: Any) -> None:
    """What --json prints: ``obj`` as indented JSON, non-ASCII text kept as is."""
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))
