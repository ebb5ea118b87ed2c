"""A file's persons held in a temporary table until every row is known good.

The table is the import's connection's own (the store's other connections never see it),
made when the import starts and dropped when it ends, well or not. It is filled outside
the store's transactions, so the store's write lock is taken only to upsert the persons
of a good file: on SQLite, a lock held while a large file was read would keep every
command waiting. An IIN twice in the file is found there, by the database, so memory
stays that of one batch whatever the file's size.
"""

from __future__ import annotations

from collections.abc import Sequence

from projections.db import Database
from projections.persons_file import KEPT, Problems

TABLE = "persons_import_staging"
COLUMNS = ("line", "iin", "full_name", "birth_date")

CREATE = f"""CREATE TEMPORARY TABLE {TABLE} (
    line BIGINT NOT NULL,
    iin {{sortable}} NOT NULL,
    full_name TEXT NOT NULL,
    birth_date TEXT NOT NULL
)"""
INDEX = f"CREATE INDEX {TABLE}_iin ON {TABLE} (iin, line)"
REPEATS = f"""WITH firsts AS (
    SELECT iin, MIN(line) AS first FROM {TABLE} GROUP BY iin HAVING COUNT(*) > 1
)
SELECT s.line, s.iin, f.first, COUNT(*) OVER ()
FROM {TABLE} s JOIN firsts f ON f.iin = s.iin
WHERE s.line > f.first ORDER BY s.line LIMIT ?"""
# WHERE true: SQLite reads an ON CONFLICT after a bare FROM as a join's ON.
UPSERT = (
    f"INSERT INTO persons (iin, full_name, birth_date) "
    f"SELECT iin, full_name, birth_date FROM {TABLE} WHERE true "
    "ON CONFLICT (iin) DO UPDATE SET full_name = excluded.full_name, "
    "birth_date = excluded.birth_date"
)

Staged = tuple[int, str, str, str]
"""A person with the line of the file it is on."""


def create(db: Database) -> None:
    db.create([CREATE])


def add(db: Database, rows: Sequence[Staged]) -> None:
    db.insert(TABLE, COLUMNS, rows)


def repeats(db: Database) -> Problems:
    """Each row whose IIN an earlier row has, named with the line of the first."""
    db.execute(INDEX)
    found = db.fetch(REPEATS, (KEPT,))
    kept = [(int(line), f"IIN {iin} is already on line {first}") for line, iin, first, _ in found]
    return Problems(kept, int(found[0][3]) if found else 0)


def apply(db: Database) -> None:
    """The directory takes every staged person, a person it has updated, all at once."""
    with db.transaction():
        db.execute(UPSERT)


def drop(db: Database) -> None:
    db.execute(f"DROP TABLE IF EXISTS {TABLE}")
