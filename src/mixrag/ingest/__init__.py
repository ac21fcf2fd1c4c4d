"""Ingest: loaders (files to documents, one parser per format in ``formats``), chunking
(documents to passages), the ingest pipeline, and ``location`` (a passage's place in its file)."""

from mixrag.ingest.chunking import Chunk, ChunkConfig, chunk_document, split_to_fit
from mixrag.ingest.documents import Document, LoadedFile, Segment, document_id
from mixrag.ingest.loaders import discover, format_of, load_file
from mixrag.ingest.location import location

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
    "location",
    "split_to_fit",
]
