"""Okapi BM25 in PostgreSQL SQL, over the passages' English-stemmed ``tsvector``.

PostgreSQL's own ``ts_rank_cd`` found the gold paragraph first for 44% of SQuAD dev
questions against FTS5 BM25's 79%, so the PostgreSQL store ranks with BM25 computed in
SQL instead (docs/BENCHMARKS.md compares it with FTS5). The corpus totals it needs
(passages, summed lengths) are kept in ``meta`` by every write (:func:`add_fts_stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_BM25_SQL = """
WITH q AS (
    SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %(text)s))
), df AS (
    SELECT lexeme,
           (SELECT count(*) FROM passages p WHERE p.tsv @@ quote_literal(lexeme)::tsquery) AS n
    FROM q
), st AS (
    SELECT GREATEST((SELECT value::float8 FROM meta WHERE key = 'fts_docs'), 1) AS docs,
           GREATEST((SELECT value::float8 FROM meta WHERE key = 'fts_len'), 1) AS len
), cand AS (
    SELECT p.rowid, p.tsv FROM passages p
    WHERE p.tsv @@ (SELECT string_agg(quote_literal(lexeme), ' | ')::tsquery FROM q)
      AND (%(rowids)s::bigint[] IS NULL OR p.rowid = ANY(%(rowids)s::bigint[]))
)
SELECT c.rowid,
       SUM(ln(1 + (st.docs - df.n + 0.5) / (df.n + 0.5))
           * t.tf * 2.2
           / (t.tf + 1.2 * (0.25 + 0.75 * length(c.tsv) / (st.len / st.docs)))) AS s
FROM cand c
CROSS JOIN LATERAL (
    SELECT u.lexeme, COALESCE(array_length(u.positions, 1), 1) AS tf FROM unnest(c.tsv) u
) t
JOIN df ON df.lexeme = t.lexeme
CROSS JOIN st
GROUP BY c.rowid
ORDER BY s DESC, c.rowid
LIMIT %(n)s
"""


def bm25(
    conn: Any, terms: list[str], n: int, rowids: Sequence[int] | None = None
) -> list[tuple[int, float]]:
    """Top-n (row id, BM25 score) for the question ``terms``; higher is better; among
    ``rowids`` only, when given (each score unchanged: the statistics are the corpus's).

    Okapi BM25 with FTS5's constants (k1 = 1.2, b = 0.75): the terms stemmed by
    PostgreSQL's English configuration, any of them matching (GIN index); idf from each
    term's document count; term frequency from the tsvector's positions; document
    length and its average from the running totals in ``meta``. Lengths count distinct
    lexemes, not tokens: the one difference from FTS5's formula.
    """
    only = None if rowids is None else [int(r) for r in rowids]
    rows = conn.execute(_BM25_SQL, {"text": " ".join(terms), "n": n, "rowids": only}).fetchall()
    return [(int(r), float(s)) for r, s in rows]


def add_fts_stats(conn: Any, docs: int, length: int) -> None:
    """Keep BM25's corpus totals (passages, summed lengths) in step with a write."""
    if docs or length:
        conn.execute(
            "UPDATE meta SET value = (value::bigint + %s)::text WHERE key = 'fts_docs'", (docs,)
        )
        conn.execute(
            "UPDATE meta SET value = (value::bigint + %s)::text WHERE key = 'fts_len'", (length,)
        )
