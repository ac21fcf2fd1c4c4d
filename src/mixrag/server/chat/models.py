"""Model names of the chat API: one per answering mode, and an alias for the server's default.

``model`` picks how the K passages are combined: ``mixrag-rag-sequence``,
``mixrag-rag-token``, ``mixrag-concat``, ``mixrag-closed-book``. ``mixrag`` is the
server's default mode (``mixrag serve --mode``), for clients that ask for one name; a
response names the mode that answered (``mixrag-rag-sequence``, never the alias), as
OpenAI's name the snapshot behind an alias.
"""

from __future__ import annotations

from typing import Any

from mixrag.answer import MODES
from mixrag.server.chat.errors import ChatError

ALIAS = "mixrag"
OWNER = "mixrag"


def model_name(mode: str) -> str:
    """The model name of an answering mode: ``mixrag-<mode>``."""
    return f"{ALIAS}-{mode}"


def model_names() -> tuple[str, ...]:
    """Every name ``model`` accepts: the alias, then one per mode."""
    return (ALIAS, *(model_name(m) for m in MODES))


def mode_of(model: str, default_mode: str) -> str:
    """The answering mode ``model`` names, or a 404 ``model_not_found`` listing the names."""
    if model == ALIAS:
        return default_mode
    for mode in MODES:
        if model == model_name(mode):
            return mode
    raise ChatError(
        404,
        "model_not_found",
        f"the model {model!r} does not exist; choose one of {', '.join(model_names())}",
        param="model",
    )


def model_card(name: str, default_mode: str, created: int) -> dict[str, Any]:
    """One entry of ``GET /v1/models``, OpenAI's ``model`` object plus the mode it answers in."""
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": OWNER,
        "mixrag": {"mode": mode_of(name, default_mode)},
    }
