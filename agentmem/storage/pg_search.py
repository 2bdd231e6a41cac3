"""Full-text search over turns on PostgreSQL: what SQLite's FTS5 index does on a server.

On SQLite, ``turns_fts`` (an FTS5 table, see :mod:`agentmem.storage.dialogue`) finds the
turns holding a query's words, ranked by BM25. Without its equivalent on a server database
the turns structure lost its lexical half (recall by meaning only), exactly when a user
outgrew one machine. Here the same search is built from what every PostgreSQL (12 or
later) has, with no extension to install:

- ``turns.text_search``, a ``tsvector`` column *generated* from ``turns.text``: the server
  keeps it in step with every insert and update (an erased turn's words leave with its
  text, a forgotten user's with the row), and a GIN index on it;
- the text is read as FTS5's ``unicode61 remove_diacritics 2`` tokenizer reads it: runs of
  letters and digits, anything else a separator (``don't`` is ``don`` then ``t``, ``3.5``
  is ``3`` then ``5``), accented Latin letters folded (``café`` is ``cafe``), lower-cased,
  no stemming and no stop words (the ``simple`` configuration);
- a query is an OR of its words, each a phrase of its tokens (FTS5's ``"w1" OR "w2"``),
  with the user in the WHERE clause;
- the rank is BM25's shape: each word's ``ts_rank_cd`` (term frequency, damped by the
  turn's length) weighted by the word's inverse document frequency. The IDF matters: with
  plain ``ts_rank_cd`` a turn saying a speaker's name three times outranks the one turn
  naming the rare thing asked about. FTS5 counts document frequencies over every user's
  turns; here they are counted over the user's own, which the user-and-word index answers
  without reading other users' rows.

A database written before this existed gets the column (filled from the stored texts by
the server) and the index when it is opened.

Known differences from FTS5: letters outside Latin are lower-cased by the server's
``LC_CTYPE`` (a database created with the C locale keeps ``Ω`` apart from ``ω``); the
separators outside ASCII are the common punctuation blocks, not every Unicode symbol.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)

#: The column and index names; the column is not part of the ORM row (the server writes it).
COLUMN = "text_search"
INDEX = "ix_turns_text_search"


def _fold_table() -> tuple[str, str]:
    """Return the accented Latin letters and their unaccented letters, in step.

    FTS5's ``remove_diacritics 2`` folds a letter to its base letter; these are the Latin
    letters whose canonical decomposition starts with an ASCII letter (``é`` -> ``e``).
    """
    accented, plain = [], []
    for code in range(0xC0, 0x250):
        letter = chr(code)
        base = unicodedata.normalize("NFD", letter)[0]
        if base != letter and base.isascii() and base.isalpha():
            accented.append(letter)
            plain.append(base)
    return "".join(accented), "".join(plain)


_ACCENTED, _PLAIN = _fold_table()
#: What separates tokens: any ASCII character but a letter or digit, and the punctuation
#: of Latin-1, General Punctuation (curly quotes, dashes, the ellipsis) and CJK. Written as
#: one regular expression that PostgreSQL reads the same way on every locale.
_SEPARATORS = "[^0-9A-Za-z\u0080-\U0010ffff]|[\u00a0-\u00bf\u00d7\u00f7\u2000-\u206f\u3000-\u303f]"


def _normalized(expression: str) -> str:
    """Return SQL reading ``expression`` (text) as FTS5 would: folded, split into tokens."""
    # Literals, not parameters: a generated column's expression cannot take parameters.
    # None of these characters is a quote, so they need no escaping.
    return (
        f"regexp_replace(translate({expression}, '{_ACCENTED}', '{_PLAIN}'), "
        f"'{_SEPARATORS}', ' ', 'g')"
    )


_GENERATED = f"to_tsvector('simple'::regconfig, {_normalized('text')})"
_SCHEMA = (
    f"ALTER TABLE turns ADD COLUMN IF NOT EXISTS {COLUMN} tsvector "
    f"GENERATED ALWAYS AS ({_GENERATED}) STORED",
    f"CREATE INDEX IF NOT EXISTS {INDEX} ON turns USING gin ({COLUMN})",
)

#: BM25's IDF of each word over the user's turns, times the word's cover density in a turn
#: (normalization 1: divided by 1 + log of the turn's length, BM25's preference for the
#: short turn that is about the word), summed over the words a turn holds. Measured on
#: locomo_dev (each question's content words, the 40 best turns, FTS5's list beside this
#: one): the two lists share 97.6% / 91.4% of their turns (conv-26 / conv-30) and find as
#: much of the evidence (67.0% / 75.0% against FTS5's 67.0% / 71.4%). Plain ts_rank_cd
#: shares 82.9% / 84.1% and finds 43.6% / 64.0%; no length damping (normalization 0)
#: shares 70.7% / 63.8%; dividing by the length (2) shares 88.6% / 84.2%.
_SEARCH = text(
    f"""
    WITH word AS (
        SELECT phraseto_tsquery('simple'::regconfig, {_normalized("w")}) AS query
        FROM unnest(CAST(:words AS text[])) AS w
    ),
    mine AS (SELECT count(*) AS total FROM turns WHERE user_id = :user),
    weighted AS (
        SELECT word.query,
               ln(1 + (mine.total - found.df + 0.5) / (found.df + 0.5)) AS idf
        FROM word CROSS JOIN mine
        CROSS JOIN LATERAL (
            SELECT count(*) AS df FROM turns
            WHERE user_id = :user AND {COLUMN} @@ word.query
        ) AS found
        WHERE found.df > 0
    )
    SELECT turns.id FROM turns JOIN weighted ON turns.{COLUMN} @@ weighted.query
    WHERE turns.user_id = :user
    GROUP BY turns.id
    ORDER BY sum(weighted.idf * ts_rank_cd(turns.{COLUMN}, weighted.query, 1)) DESC, turns.id
    LIMIT :limit
    """
)


def create_turn_search(connection: Connection) -> bool:
    """Add the generated ``tsvector`` column and its GIN index where missing; return
    whether the database has them.

    An older database's turns are kept: ``ADD COLUMN`` computes the column from each
    stored text. A server older than PostgreSQL 12 (no generated columns) gets none, with
    a warning: recall is then by meaning only.
    """
    version = connection.dialect.server_version_info or (0,)
    if version < (12,):
        logger.warning(
            "PostgreSQL %s has no generated columns (12 or later has): turns are recalled "
            "by meaning only",
            ".".join(str(part) for part in version),
        )
        return False
    present = connection.execute(
        text(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'turns' AND indexname = :index"
        ),
        {"index": INDEX},
    ).scalar()
    if not present:  # checked first: the DDL takes a lock every opening would wait for
        for statement in _SCHEMA:
            connection.execute(text(statement))
    return True


def search_turns(
    connection: Connection, user_id: str, words: Sequence[str], limit: int
) -> list[int]:
    """Return ids of the user's turns that best match ``words``, best first (see module)."""
    rows = connection.execute(_SEARCH, {"words": list(words), "user": user_id, "limit": limit})
    return [int(row[0]) for row in rows]


__all__ = ["COLUMN", "INDEX", "create_turn_search", "search_turns"]
