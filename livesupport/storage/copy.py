"""Copying an installation from SQLite to PostgreSQL (``cutelive migrate-db --to URL``).

Both databases are at the same schema version (each ``Storage.open`` migrates its own), so the
tables and columns match. Tables are copied in an order where every row's references exist
already, in batches, all in one PostgreSQL transaction: the copy is whole or not at all.
Then each table's id sequence continues after the largest id copied, and the counts of both
sides are compared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Storage

#: Rows per INSERT round trip (file pieces are 64 KiB each: about 6 MiB a batch).
BATCH = 100


def _tables(source: Storage) -> list[str]:
    """The source's tables, each after the tables it references."""
    names = [
        row[0]
        for row in source.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY rowid"
        ).fetchall()
    ]
    refs = {
        name: {
            row[2]
            for row in source.execute(f"PRAGMA foreign_key_list({name})").fetchall()
            if row[2] != name
        }
        for name in names
    }
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and refs[n] <= set(ordered)]
        if not ready:  # a cycle of references: not in our schema
            raise RuntimeError(f"cannot order the tables {sorted(set(names) - set(ordered))}")
        ordered += ready
    return ordered


def _columns(source: Storage, table: str) -> list[str]:
    return [row[1] for row in source.execute(f"PRAGMA table_info({table})").fetchall()]


def _count(storage: Storage, table: str) -> int:
    return storage.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


async def copy_sqlite_to_postgresql(source: Storage, dest: Storage) -> dict[str, int]:
    """Copy every row of ``source`` (SQLite) into the empty ``dest`` (PostgreSQL); returns
    the rows per table, equal on both sides (else ``RuntimeError``, and nothing is kept)."""
    tables = _tables(source)

    def copy() -> dict[str, int]:
        counts = {}
        # One read transaction on SQLite: a consistent snapshot even if something writes.
        with source.db.atomic(), dest.atomic():
            for table in tables:
                if _count(dest, table):
                    raise RuntimeError(
                        f"the database {dest.where()} is not empty (its table {table} has "
                        "rows); migrate into a new, empty database"
                    )
            for table in tables:
                columns = _columns(source, table)
                names = ", ".join(columns)
                insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
                cursor = source.db.connection().execute(f"SELECT {names} FROM {table}")
                while rows := cursor.fetchmany(BATCH):
                    dest.executemany(insert, [tuple(r) for r in rows])
                counts[table] = _count(source, table)
                if counts[table] != _count(dest, table):
                    raise RuntimeError(
                        f"{table}: {counts[table]} rows in SQLite but {_count(dest, table)} copied"
                    )
                if "id" in columns:
                    dest.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
                    )
        return counts

    return await dest.run(copy)
