"""The one way the studio opens its small SQLite indexes (``runs.db``, ``datasets.db``).

Every call opens a fresh connection in autocommit mode with named rows and closes it again, so threads and
processes never share one; ``timeout`` waits out a writer in another process.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path) -> sqlite3.Connection:
    """A new autocommit connection to ``path`` whose rows can be read by column name."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.row_factory = sqlite3.Row
    return db


def execute(path: Path, sql: str, args: tuple = (), *, schema: str | None = None) -> list[sqlite3.Row]:
    """Run one SQL statement on the index at ``path`` (after the ``schema`` script, when given); its rows."""
    db = connect(path)
    try:
        if schema:
            db.executescript(schema)
        return db.execute(sql, args).fetchall()
    finally:
        db.close()
