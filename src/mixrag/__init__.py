"""mixrag: retrieval-augmented generation as a finite mixture model (Lewis et al., 2020).

The common path, runnable as is (``./my-docs``: a folder of .txt, .md, .html, .pdf, ...)::

    import mixrag

    kb = mixrag.KnowledgeBase.open("./idx", create=True, model="smollm2-135m")
    kb.add("./my-docs")
    for hit in kb.search("What did Tesla invent?", k=3):
        print(hit.rank, hit.prior, hit.passage.title)
    answer = kb.ask("What did Tesla invent?")
    print(answer.text, [(c.hit.rank, c.posterior) for c in answer.citations])

:class:`KnowledgeBase` (:mod:`mixrag.knowledge_base`) wraps the objects the command line
uses, which are exported here too: the indexes (:class:`Index`, :class:`PgIndex`,
:func:`open_index`), :class:`Retriever`, :class:`RAG`, what an answer is
(:class:`Answer`, :class:`Citation`, :class:`Hit`, :class:`Passage`), the configs
(:class:`IndexConfig`, :class:`ChunkConfig`, :class:`EncoderConfig`,
:class:`VectorIndexConfig`, :class:`RetrieverConfig`, :class:`GeneratorConfig`,
:class:`RAGConfig`, :class:`KnowledgeBaseConfig`) and the errors. Importing ``mixrag``
loads none of them: each name imports its module on first access (module
``__getattr__``), so ``import mixrag`` stays free of numpy, torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mixrag.types import Hit, Passage

if TYPE_CHECKING:
    from mixrag.answer import MODES, Answer, Citation, RAGConfig
    from mixrag.encoders.config import EncoderConfig
    from mixrag.errors import (
        IndexMismatchError,
        LoadError,
        MixragError,
        ModelLoadError,
        NotAnIndexError,
    )
    from mixrag.generator.config import GeneratorConfig
    from mixrag.index.config import IndexConfig, VectorIndexConfig
    from mixrag.index.folder import Index
    from mixrag.index.opening import open_index
    from mixrag.index.postgres import PgIndex
    from mixrag.ingest.chunking import ChunkConfig
    from mixrag.ingest.pipeline import IngestReport
    from mixrag.knowledge_base import KnowledgeBase, KnowledgeBaseConfig
    from mixrag.rag import RAG
    from mixrag.retriever.retriever import DEFAULT_TAU, METHODS, Retriever, RetrieverConfig
    from mixrag.store.base import FileRecord

__version__ = "0.1.0"

# name -> the module that defines it, imported on first access
_LAZY = {
    "KnowledgeBase": "mixrag.knowledge_base",
    "KnowledgeBaseConfig": "mixrag.knowledge_base",
    "Index": "mixrag.index.folder",
    "PgIndex": "mixrag.index.postgres",
    "open_index": "mixrag.index.opening",
    "IndexConfig": "mixrag.index.config",
    "VectorIndexConfig": "mixrag.index.config",
    "ChunkConfig": "mixrag.ingest.chunking",
    "EncoderConfig": "mixrag.encoders.config",
    "IngestReport": "mixrag.ingest.pipeline",
    "FileRecord": "mixrag.store.base",
    "Retriever": "mixrag.retriever.retriever",
    "RetrieverConfig": "mixrag.retriever.retriever",
    "DEFAULT_TAU": "mixrag.retriever.retriever",
    "METHODS": "mixrag.retriever.retriever",
    "GeneratorConfig": "mixrag.generator.config",
    "RAG": "mixrag.rag",
    "RAGConfig": "mixrag.answer",
    "Answer": "mixrag.answer",
    "Citation": "mixrag.answer",
    "MODES": "mixrag.answer",
    "MixragError": "mixrag.errors",
    "NotAnIndexError": "mixrag.errors",
    "IndexMismatchError": "mixrag.errors",
    "LoadError": "mixrag.errors",
    "ModelLoadError": "mixrag.errors",
}

__all__ = [
    "DEFAULT_TAU",
    "METHODS",
    "MODES",
    "RAG",
    "Answer",
    "ChunkConfig",
    "Citation",
    "EncoderConfig",
    "FileRecord",
    "GeneratorConfig",
    "Hit",
    "Index",
    "IndexConfig",
    "IndexMismatchError",
    "IngestReport",
    "KnowledgeBase",
    "KnowledgeBaseConfig",
    "LoadError",
    "MixragError",
    "ModelLoadError",
    "NotAnIndexError",
    "Passage",
    "PgIndex",
    "RAGConfig",
    "Retriever",
    "RetrieverConfig",
    "VectorIndexConfig",
    "__version__",
    "open_index",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` (see ``_LAZY``) on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mixrag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
