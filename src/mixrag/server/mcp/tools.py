"""The MCP tools over one :class:`~mixrag.server.service.Service`: what a model may call.

:func:`build_server` returns an ``MCPServer`` (the official SDK's high-level server) with

* ``search``: retrieval only, the top-k passages with score and prior p(z|x);
* ``ask``: an answer, log p(y|x), and every passage with prior and posterior p(z|x,y);
* ``score``: log p(y|x) of a given answer, with the same per-passage account;
* ``list_documents``: the indexed files and their ids;
* ``add_document`` / ``remove_document``: only without ``McpConfig.read_only`` and when
  the index's folder is writable.

Each tool calls the service method its ``/v1`` route calls, with the same defaults and
limits, and returns the route's JSON body as structured content (its output schema is
the route's response model, :mod:`mixrag.server.schemas`) beside a readable text
(:mod:`~mixrag.server.mcp.text`). A mistake (bad argument, unknown document, a question
over the limit, a full queue) comes back as a tool error naming it, never a crash.
Tools are plain functions: the SDK runs them on worker threads, so a long answer does
not hold up the event loop that serves the HTTP API.

No ``from __future__ import annotations`` here: the SDK reads the tools' annotations
(argument descriptions that quote this server's limits) when they are registered.
"""

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from mixrag.answer import MODES
from mixrag.errors import MixragError
from mixrag.server.concurrency import BusyError
from mixrag.server.config import ServerConfig
from mixrag.server.errors import ApiError, api_error
from mixrag.server.mcp import text as render
from mixrag.server.mcp.config import McpConfig
from mixrag.server.params import resolve
from mixrag.server.schemas import (
    AnswerOut,
    DocumentOut,
    DocumentsOut,
    Method,
    Mode,
    SearchOut,
    UploadOut,
)
from mixrag.server.service import Service
from mixrag.server.streaming import finite

log = logging.getLogger(__name__)

T = TypeVar("T")

INSTRUCTIONS = """\
mixrag answers questions from the documents of one index, retrieval-augmented generation \
as a mixture model (Lewis et al. 2020): every answer comes with the probability of each \
retrieved passage being its source. Use `search` to read the passages on a topic yourself \
(fast), `ask` for a short answer (a name, date, number, phrase) with its citations, \
`score` to check how well the documents support an answer you already have, and \
`list_documents` to see what is indexed."""

_READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)


@contextmanager
def _as_tool_errors() -> Iterator[None]:
    """The service's refusals as tool errors with the HTTP API's code and message."""
    try:
        yield
    except (ApiError, MixragError, BusyError) as exc:
        err = api_error(exc)
        raise ToolError(f"{err.code}: {err.detail}") from None


def _result(model: type[BaseModel], body: dict[str, Any], readable: str) -> CallToolResult:
    """Readable text for the model, the ``/v1`` JSON body as structured content."""
    data = finite(body)
    model.model_validate(data)  # the output schema the tool advertises
    return CallToolResult(
        content=[TextContent(type="text", text=readable)], structured_content=data
    )


def writable(path: Path) -> bool:
    """Whether documents can be written under ``path`` (or created there, if it is missing)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK)


def build_server(service: Service, config: McpConfig) -> MCPServer[Any]:
    """An MCP server whose tools call ``service`` (module docstring)."""
    from mixrag import __version__

    server: MCPServer[Any] = MCPServer(
        "mixrag", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )
    _add_read_tools(server, service)
    if config.read_only:
        log.info("MCP: read-only, no add_document / remove_document")
    elif not writable(Path(service.index.path)):
        log.warning(
            "MCP: %s is not writable; add_document / remove_document are off", service.index.path
        )
    else:
        _add_write_tools(server, service)
    return server


def _k_text(cfg: ServerConfig) -> str:
    """The default K in words: one number, or the mode's own (concat reads fewer)."""
    by_mode = {m: cfg.k_for(m) for m in MODES}
    if len(set(by_mode.values())) == 1:
        return str(cfg.k_for())
    return ", ".join(f"{k} for {m}" for m, k in by_mode.items())


def _fields(service: Service) -> dict[str, Any]:
    """Descriptions of the arguments ask, score and search share, with this server's
    defaults and limits (checked by the service, as for ``/v1``)."""
    cfg = service.config
    return {
        "question": Field(
            description=f"The question, in natural language, 1 to {cfg.max_question_chars} "
            "characters."
        ),
        "mode": Field(
            description=f"How the k passages are combined (default {cfg.mode}): rag-sequence "
            "(each passage drafts an answer, the mixture ranks them; best for short facts), "
            "rag-token (the mixture at every token: an answer may draw on several passages), "
            "concat (all k passages in one prompt), closed-book (no passages: the model alone)."
        ),
        "k": Field(
            description=f"Passages to retrieve and mix, 1 to {cfg.max_k} (default {_k_text(cfg)})."
        ),
        "method": Field(
            description="Retrieval: combined (meaning and keywords in one score), dense (by "
            "meaning), bm25 (by keywords) or hybrid (both lists fused by rank); "
            f"default {cfg.method}."
        ),
        "alternatives": Field(
            description="Also return up to this many other answers ranked below the answer, "
            "each with its p(y|x) (0 to 10, default 0): how close the runner-up is. "
            "rag-sequence lists the answers its passages drafted; greedy decoding has none.",
        ),
        "answer": Field(
            description="The candidate answer y to score, e.g. a name, date or short phrase "
            f"(at most {cfg.max_question_chars} characters)."
        ),
    }


def _add_read_tools(server: MCPServer[Any], service: Service) -> None:
    f = _fields(service)

    def search(
        question: Annotated[str, f["question"]],
        k: Annotated[int | None, f["k"]] = None,
        method: Annotated[Method | None, f["method"]] = None,
    ) -> Annotated[CallToolResult, SearchOut]:
        with _as_tool_errors():
            hits = service.search(question, k, method)
        used = method or service.config.method
        body = {
            "question": question,
            "method": used,
            "k": k or service.config.k_for(),
            "hits": [h.to_dict() for h in hits],
        }
        return _result(SearchOut, body, render.hits_text(question, used, hits))

    def ask(
        question: Annotated[str, f["question"]],
        mode: Annotated[Mode | None, f["mode"]] = None,
        k: Annotated[int | None, f["k"]] = None,
        method: Annotated[Method | None, f["method"]] = None,
        alternatives: Annotated[int | None, f["alternatives"]] = None,
    ) -> Annotated[CallToolResult, AnswerOut]:
        with _as_tool_errors():
            params = resolve(
                service.config, question, mode=mode, k=k, method=method, alternatives=alternatives
            )
            answer = service.ask(params)
        return _result(AnswerOut, answer.to_dict(), render.answer_text(answer))

    def score(
        question: Annotated[str, f["question"]],
        answer: Annotated[str, f["answer"]],
        mode: Annotated[Mode | None, f["mode"]] = None,
        k: Annotated[int | None, f["k"]] = None,
        method: Annotated[Method | None, f["method"]] = None,
    ) -> Annotated[CallToolResult, AnswerOut]:
        with _as_tool_errors():
            params = resolve(service.config, question, mode=mode, k=k, method=method)
            scored = service.score(params, answer)
        return _result(AnswerOut, scored.to_dict(), render.answer_text(scored, scored=True))

    def list_documents() -> Annotated[CallToolResult, DocumentsOut]:
        with _as_tool_errors():
            documents = service.documents()
        return _result(DocumentsOut, {"documents": documents}, render.documents_text(documents))

    cfg = service.config
    _add(
        server,
        search,
        _READ,
        f"""\
Find the passages of the indexed documents most relevant to a question, without \
generating an answer. Returns up to k passages (default {cfg.k_for()}, at most {cfg.max_k}), best \
first, each with its full text, title and source file, the retriever's score (the inner \
product d(z)·q(x)) and its prior p(z|x): the retriever's probability that this passage is \
the one the question needs, over the passages returned. Use it to read what the documents \
say and answer in your own words, or to see what the index knows before asking. Fast: no \
language model runs.""",
    )
    _add(
        server,
        ask,
        _READ,
        f"""\
Answer a question from the indexed documents with mixrag's own local language model, \
and say which passage the answer came from. Returns the answer (short: a name, date, \
number or phrase), log p(y|x) (the answer's log-probability under the mode's mixture; \
closer to 0 means more certain), and the k passages (default {_k_text(cfg)}) with their prior \
p(z|x) and posterior p(z|x,y), the probability that the passage is the answer's source \
once the answer is known. The passage with the highest posterior is the citation; the \
text result marks it [n] (n = retrieval rank). Takes seconds; for explanations or long \
answers, `search` and read the passages instead.""",
    )
    _add(
        server,
        score,
        _READ,
        """\
Measure how well the indexed documents support a candidate answer you already have: \
log p(y|x) of `answer` given `question` under a mode (closer to 0 = better supported; \
compare candidates for the same question, not across questions), with every retrieved \
passage's prior p(z|x) and posterior p(z|x,y) (which passage supports the answer). \
Nothing is generated. Use it to choose between candidate answers or to check a claim.""",
    )
    _add(
        server,
        list_documents,
        _READ,
        """\
List the indexed files: for each its id (what remove_document takes), name, path, the \
documents and passages it holds, its size and sha256, whether it was added through this \
server (uploaded), and when it was indexed (Unix time).""",
    )


def _add_write_tools(server: MCPServer[Any], service: Service) -> None:
    cfg = service.config
    suffixes = ", ".join(cfg.extensions)

    def add_document(
        text: Annotated[
            str, Field(description="The document's text (a file's content when `name` is given).")
        ],
        title: Annotated[
            str | None,
            Field(description="A title: the text is stored as a titled record. Give this or name."),
        ] = None,
        name: Annotated[
            str | None,
            Field(
                description=f"A file name with one of the suffixes {suffixes}, e.g. notes.md: "
                "the text is that file's content (markdown, HTML, JSON lines...). Give this "
                "or title."
            ),
        ] = None,
    ) -> Annotated[CallToolResult, UploadOut]:
        with _as_tool_errors():
            status, document, report = service.add_text(text, title, name)
        body = {"status": status, "document": document, "report": report}
        return _result(UploadOut, body, render.upload_text(status, document))

    def remove_document(
        id: Annotated[  # the field name list_documents gives
            str, Field(description="The file's id: 16 hex digits, from list_documents.")
        ],
    ) -> Annotated[CallToolResult, DocumentOut]:
        with _as_tool_errors():
            document = service.remove(id)
        return _result(DocumentOut, document, render.removed_text(document))

    limit_mb = cfg.max_upload_bytes / 2**20
    _add(
        server,
        add_document,
        ToolAnnotations(
            destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),  # replaces a same name
        f"""\
Add a text document to the index, so that later searches and answers can use it. Give \
`text` and either `title` (stored as a titled record; the same title again replaces it) \
or `name`, a file name (the same name again replaces that file). At most {limit_mb:g} MB. \
Returns whether it was added, updated or unchanged, the document with its id, and the \
indexing report (passages added).""",
    )
    _add(
        server,
        remove_document,
        ToolAnnotations(destructive_hint=True, idempotent_hint=False, open_world_hint=False),
        """\
Remove an indexed file and all its passages from the index, by the id list_documents \
gives. A file added through this server is deleted with it; a file indexed from disk \
stays on disk. Returns the removed document. Cannot be undone.""",
    )


def _add(
    server: MCPServer[Any], fn: Callable[..., T], annotations: ToolAnnotations, description: str
) -> None:
    server.add_tool(fn, description=description, annotations=annotations, structured_output=True)
