"""The file formats ingest reads: a registry from file suffix to parser.

One module per family of formats, each exporting ``PARSERS`` (suffix -> parser, a
:data:`base.Parser`: the file's bytes and path to documents and warnings): text
(.txt, .md, .html), records (.json, .jsonl, SQuAD), pdf, word (.docx), slides (.pptx),
sheets (.xlsx, .csv, .tsv), odf (.odt, .ods, .odp), epub. Parsing libraries are
imported when a file of theirs is parsed, not here. docs/DESIGN.md says why each
library was chosen.
"""

from __future__ import annotations

from mixrag.ingest.formats import epub, odf, pdf, records, sheets, slides, text, word
from mixrag.ingest.formats.base import Parser

PARSERS: dict[str, Parser] = {
    **text.PARSERS,
    **records.PARSERS,
    **pdf.PARSERS,
    **word.PARSERS,
    **slides.PARSERS,
    **sheets.PARSERS,
    **odf.PARSERS,
    **epub.PARSERS,
}

__all__ = ["PARSERS", "Parser"]
