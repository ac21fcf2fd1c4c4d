"""Ingest: loaders (files to documents, one parser per format in ``formats``), chunking
(documents to passages), the ingest pipeline."""

from mixrag.ingest.chunking import Chunk, ChunkConfig, chunk_document, split_to_fit
from mixrag.ingest.documents import Document, LoadedFile, Segment, document_id
from mixrag.ingest.loaders import discover, format_of, load_file

__all__ = [
    "Chunk",
    "ChunkConfig",
    "Document",
    "LoadedFile",
    "Segment",
    "chunk_document",
    "discover",
    "document_id",
    "format_of",
    "load_file",
    "split_to_fit",
]
