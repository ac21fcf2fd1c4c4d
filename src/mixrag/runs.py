"""What ``--model`` names, loaded one way: a bundled model, a model folder, or a training run.

``ask``, ``score``, ``eval``, ``serve`` (and the Python API's ``RAG.open``) take a
model that is either a generator (bundled name or transformers folder), answered with
the index's own encoder for the questions, or a ``mixrag train`` run, which brings its
trained generator, its trained query encoder q(x) and the prior temperature it was
trained with. :func:`load_run` is the one place that tells them apart;
:func:`generator_options` checks what ``--device``, ``--dtype`` and
``--passage-cache-mb`` ask for, and :func:`new_generator` builds an untrained generator
from a model name and those options.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mixrag.errors import MixragError
from mixrag.retriever.retriever import DEFAULT_BM25_WEIGHT, DEFAULT_TAU

if TYPE_CHECKING:
    from mixrag.encoders.base import Encoder
    from mixrag.generator.hf import TransformersGenerator
    from mixrag.generator.vllm import VLLMGenerator
    from mixrag.generator.vllm_client import VLLMConfig
    from mixrag.index.opening import AnyIndex


@dataclass
class Run:
    """The models a ``--model`` stands for, ready to answer over one index.

    generator:     the generator (not loaded yet: ``load()`` or first use does it), or
                   a generator server's client; None when :func:`load_run` was asked
                   for retrieval only.
    query_encoder: a training run's q(x), or None (the index's encoder encodes questions).
    tau:           the prior's temperature: the one asked for, else the run's, else
                   ``DEFAULT_TAU``.
    origin:        a training run's ``Checkpoint.identity`` (folder, step), else None.
    bm25_weight:   w in the retriever score d(z)ᵀq(x) + w · bm25n(x, z): the one the
                   run was trained with (0 for runs trained before it existed), else
                   ``DEFAULT_BM25_WEIGHT``.
    """

    generator: TransformersGenerator | VLLMGenerator | None
    query_encoder: Encoder | None
    tau: float
    origin: dict[str, Any] | None = None
    bm25_weight: float = DEFAULT_BM25_WEIGHT


def load_run(
    model: str | None,
    index: AnyIndex,
    *,
    tau: float | None = None,
    generator_options: Mapping[str, Any] | None = None,
    with_generator: bool = True,
    remote: VLLMConfig | None = None,
) -> Run:
    """Resolve ``model`` for answering over ``index``.

    model:             a bundled name, a model folder, a training run (its folder or its
                       ``checkpoint/``), or None for the default generator.
    tau:               the prior's temperature; None means "not given": a training run's
                       own, else ``DEFAULT_TAU``.
    generator_options: GeneratorConfig fields to set (``device``, ``dtype``,
                       ``passage_cache_mb``, ...).
    with_generator:    False for retrieval only: no generator is built.
    remote:            a vLLM server that runs the generator (:func:`remote_generator`);
                       the tokeniser is still ``model``'s, loaded here.

    A training run is checked against the index first (its q(x) was trained against
    these passage vectors; :class:`~mixrag.errors.IndexMismatchError` otherwise). The
    generator reads and fills the index folder's passage KV blocks (``mixrag warm``).
    """
    from mixrag.train.checkpoint import find_checkpoint, read_checkpoint

    options = dict(generator_options or {})
    generator: TransformersGenerator | VLLMGenerator | None = None
    found = find_checkpoint(model) if model else None
    if found is not None:
        ckpt = read_checkpoint(found)
        ckpt.check_index(index)
        if with_generator:
            generator = (
                ckpt.load_generator(**options)
                if remote is None
                else remote_generator(ckpt.served_generator(), remote, ckpt.generator_config)
            )
        run = Run(
            generator,
            ckpt.load_query_encoder(),
            ckpt.prior["tau"] if tau is None else tau,
            ckpt.identity,
            ckpt.prior["bm25_weight"],
        )
    else:
        if with_generator:
            generator = (
                new_generator(model, options)
                if remote is None
                else remote_generator((model, None), remote)
            )
        run = Run(generator, None, DEFAULT_TAU if tau is None else tau)
    from mixrag.generator.hf import TransformersGenerator

    if isinstance(run.generator, TransformersGenerator):  # a server keeps its own KV
        use_index_kv(run.generator, index)
    return run


def remote_generator(
    served: tuple[str | None, str | None],
    remote: VLLMConfig,
    config: Mapping[str, Any] | None = None,
) -> VLLMGenerator:
    """A client of the vLLM server ``remote`` for ``served`` = (the model whose
    tokeniser to use, None for the default; the folder of a training run's trained
    weights or LoRA adapters, or None), checked against the server.

    A trained run must be served by its own weights: without ``served_model`` the
    server's model whose root is that folder is used, else it is refused with the
    ``vllm serve`` flags that serve it. ``config``: a run's GeneratorConfig fields.
    """
    from mixrag.generator.config import GeneratorConfig
    from mixrag.generator.vllm import VLLMGenerator

    model, trained = served
    fields = {**(config or {}), **({"model": model} if model else {})}
    cfg = GeneratorConfig.from_dict(fields) if fields else GeneratorConfig()
    if trained is not None and remote.served_model is None:
        remote = dataclasses.replace(remote, served_model=_served_name(remote, trained))
    return VLLMGenerator.open(cfg, remote)


def _served_name(remote: VLLMConfig, trained: str) -> str:
    """The name under which the server at ``remote`` serves the folder ``trained``."""
    from pathlib import Path

    from mixrag.generator.vllm_client import VLLMClient

    client = VLLMClient(remote)
    try:
        models = client.get("/models").get("data", [])
    finally:
        client.close()
    want = str(Path(trained).resolve())
    for m in models:
        if isinstance(m, dict) and m.get("root") and str(Path(m["root"]).resolve()) == want:
            return str(m["id"])
    served = [m.get("id") for m in models if isinstance(m, dict)]
    raise MixragError(
        f"the server at {remote.url} does not serve the trained generator {want} "
        f"(it serves {served}): start it with {lora_flags(want)} (LoRA adapters) or "
        f"--model {want} (full weights), or name the served model with --served-model"
    )


def lora_flags(adapters: str, name: str = "run") -> str:
    """The ``vllm serve`` flags that serve the LoRA adapters in folder ``adapters`` as
    ``name``: their rank (from peft's adapter_config.json) as the largest rank allowed,
    and one sequence a step, because vLLM 0.32's CPU build fails on prompt log-probs
    of LoRA requests batched together (vllm-project/vllm#16668; docs/SCALING.md)."""
    import contextlib
    import json
    from pathlib import Path

    rank = 16  # vLLM's default largest rank, and mixrag train's default lora_r
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        rank = int(json.loads((Path(adapters) / "adapter_config.json").read_text())["r"])
    # the values vLLM 0.32 accepts for --max-lora-rank: the smallest that holds it
    rank = next((r for r in (1, 8, 16, 32, 64, 128, 256, 320, 512) if r >= rank), rank)
    return f"--enable-lora --lora-modules {name}={adapters} --max-lora-rank {rank} --max-num-seqs 1"


def generator_options(
    device: str = "cpu", dtype: str = "float32", passage_cache_mb: int | None = None
) -> dict[str, Any]:
    """The GeneratorConfig fields that place a generator, checked now, before any load.

    device:           "cpu", "cuda", "cuda:N", "mps" or "auto" (the first present).
    dtype:            "float32", "bfloat16", "float16" or "auto".
    passage_cache_mb: memory for the passage KV cache in MiB (0: off); None keeps
                      GeneratorConfig's default and leaves the field out.

    Returns the fields as a dict for :func:`load_run` / :func:`new_generator`. Raises
    :class:`~mixrag.errors.MixragError` naming a bad value, and
    :class:`~mixrag.errors.ModelLoadError` naming a device this machine does not have.
    """
    from mixrag.generator.config import GeneratorConfig
    from mixrag.generator.models import resolve_device

    options: dict[str, Any] = {"device": device, "dtype": dtype}
    if passage_cache_mb is not None:
        options["passage_cache_mb"] = passage_cache_mb
    try:
        GeneratorConfig(**options)
    except ValueError as exc:
        raise MixragError(str(exc)) from exc
    resolve_device(device)  # an absent device: one line now, not after the index work
    return options


def new_generator(
    model: str | None, generator_options: Mapping[str, Any] | None = None
) -> TransformersGenerator:
    """An untrained generator, not loaded yet (``load()`` or first use loads it).

    model:             a bundled name, a transformers folder, a ``.gguf`` file, or None
                       for the default (:data:`~mixrag.generator.config.DEFAULT_MODEL`);
                       a training run goes through :func:`load_run` instead.
    generator_options: GeneratorConfig fields to set (``device``, ``dtype``, ...).
    """
    from mixrag.generator.config import GeneratorConfig
    from mixrag.generator.hf import TransformersGenerator

    config = GeneratorConfig(model=model) if model else GeneratorConfig()
    return TransformersGenerator(dataclasses.replace(config, **dict(generator_options or {})))


def use_index_kv(generator: TransformersGenerator, index: Any) -> None:
    """Let ``generator`` read and fill the passage KV blocks kept in an index folder.

    Only folder indexes have a place for them; a generator without a passage cache
    keeps nothing.
    """
    path = getattr(index, "passage_kv_path", None)
    if path is None or generator.passage_cache is None:
        return
    from mixrag.generator.kv_store import KVStore

    generator.use_kv_store(KVStore(path))
