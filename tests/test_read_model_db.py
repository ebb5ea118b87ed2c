"""The read models' connection writes many rows at once and reads back exactly what it was
given, on SQLite and on PostgreSQL (where the rows travel as one JSON parameter)."""

from __future__ import annotations

from projections.db import connect

TABLE = (
    "CREATE TABLE rows_kept (name {sortable} PRIMARY KEY, amount BIGINT, digest BYTEA, "
    "active BOOLEAN, note TEXT)"
)
COLUMNS = ("name", "amount", "digest", "active", "note")
AWKWARD = [
    ('Қазақстан "quoted" \\ back ? mark', 2**40, b"\x00\xff\\x", True, None),
    ("%s %(x)s", None, b"", False, "кириллица"),
    *((f"row-{n:04d}", n, bytes([n % 256]) * 32, n % 2 == 0, f"note {n}") for n in range(700)),
]


def test_every_row_of_an_insert_reads_back_as_it_was_written(database_url: str) -> None:
    db = connect(database_url)
    try:
        db.create([TABLE])
        with db.transaction():
            db.insert("rows_kept", COLUMNS, AWKWARD)
        rows = db.fetch(f"SELECT {', '.join(COLUMNS)} FROM rows_kept ORDER BY name")
    finally:
        db.close()
    as_read = {row[0]: (row[1], bytes(row[2]), bool(row[3]), row[4]) for row in rows}
    assert as_read == {row[0]: row[1:] for row in AWKWARD}


def test_an_upsert_changes_only_the_columns_it_names(database_url: str) -> None:
    db = connect(database_url)
    try:
        db.create([TABLE])
        db.insert("rows_kept", COLUMNS, AWKWARD[:2])
        db.insert(
            "rows_kept",
            ("name", "amount"),
            [(AWKWARD[1][0], 7), ("new", 8)],
            "ON CONFLICT (name) DO UPDATE SET amount = excluded.amount",
        )
        rows = db.fetch("SELECT name, amount, note FROM rows_kept ORDER BY amount")
    finally:
        db.close()
    assert [tuple(row) for row in rows] == [
        (AWKWARD[1][0], 7, "кириллица"),
        ("new", 8, None),
        (AWKWARD[0][0], 2**40, None),
    ]


def test_an_insert_of_no_rows_writes_nothing(database_url: str) -> None:
    db = connect(database_url)
    try:
        db.create([TABLE])
        db.insert("rows_kept", COLUMNS, [])
        assert db.fetch("SELECT count(*) FROM rows_kept") == [(0,)]
    finally:
        db.close()
