"""The OpenAI-compatible chat API: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Any OpenAI client or chat UI can ask an index questions; the answer comes with ``[n]``
markers for the passages it cites (n = retrieval rank) and, in a ``mixrag`` extension
field, everything ``/v1/ask`` returns (prior, posterior, log p(y|x)).

* :mod:`~mixrag.server.chat.config` — :class:`ChatConfig`: the conversation's limits.
* :mod:`~mixrag.server.chat.models` — model names ``mixrag-<mode>`` and the alias ``mixrag``.
* :mod:`~mixrag.server.chat.conversation` — messages -> the question and the retrieval query.
* :mod:`~mixrag.server.chat.replies` — an answer as a ``chat.completion`` and its chunks.
* :mod:`~mixrag.server.chat.stream` — the answer as ``chat.completion.chunk`` events.
* :mod:`~mixrag.server.chat.errors` — errors in OpenAI's shape.
* :mod:`~mixrag.server.chat.schemas` — request and response bodies.
* :mod:`~mixrag.server.chat.routes` — :func:`chat_router`, mounted by the app.

Nothing is imported here: :mod:`mixrag.server.config` imports the config module, and
the routes import the server.
"""
