"""`python -m memory_service.migrate SQLITE_URL POSTGRES_URL`: copy a SQLite Memory database into an empty
PostgreSQL one (docs/SCALING.md).

Users, workspaces, conversations, members and invitations, messages (ids, per-conversation sequences and
the global insertion order kept), reply claims and idempotency keys are copied in one PostgreSQL transaction:
either everything arrives or nothing does. The target's schema is created first, as Memory would; a target
that already holds data is refused, so nothing is ever merged or overwritten. Stop the Memory processes
using the SQLite file first. A progress line is printed per table and per batch of rows.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from pathlib import Path

from common.config import ConfigError
from memory_service.store import StoreUnavailable, parse_database_url

BATCH = 1000
# (table, columns, order): copied in this order, so every row's references exist before it arrives.
TABLES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("users", ("id", "email", "name", "password_hash", "created_at"), "rowid"),
    ("workspaces", ("id", "owner_id", "name", "description", "metadata_json", "created_at", "updated_at"), "rowid"),
    ("conversations", ("id", "workspace_id", "topic", "participant_ids_json", "metadata_json", "next_sequence",
                       "created_at", "updated_at"), "rowid"),
    ("conversation_participants", ("conversation_id", "user_id"), "conversation_id, user_id"),
    ("conversation_invitations", ("id", "conversation_id", "invitee_id", "inviter_id", "created_at"), "rowid"),
    ("messages", ("seq_global", "id", "conversation_id", "sender_id", "role", "content", "metadata_json",
                  "sequence", "created_at"), "seq_global"),
    ("reply_claims", ("message_id", "claimed_at"), "message_id"),
    ("idempotency_keys", ("key", "tool", "fingerprint", "result_json", "created_at", "subject_id"), "key"),
)


class Refused(Exception):
    """The copy cannot or must not run; the message says why in one line."""


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(columns)
    if table == "messages":  # the search words are computed here, as the PostgreSQL store writes them
        return (f"INSERT INTO messages ({names}, search_vector, stem_vector) VALUES"
                f" ({', '.join(['%s'] * len(columns))}, to_tsvector('simple', %s), to_tsvector('english', %s))")
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"


def _rows(source: sqlite3.Connection, table: str, columns: Sequence[str], order: str) -> Iterable[tuple]:
    from memory_service.store.words import folded_text

    cursor = source.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
    content = columns.index("content") if table == "messages" else -1
    for row in cursor:
        yield (*row, folded_text(row[content]), folded_text(row[content])) if content >= 0 else tuple(row)


def _open_source(url: str) -> sqlite3.Connection:
    location = parse_database_url(url)
    if location.backend != "sqlite":
        raise Refused(f"the source must be a sqlite:/// URL, got a {location.backend} one")
    if not Path(location.target).is_file():
        raise Refused(f"there is no SQLite database at {location.target}")
    from memory_service.store.sqlite import SqliteStore

    SqliteStore(location.target, pool_size=1).close()  # brings an older file's schema up to date first
    return sqlite3.connect(f"file:{location.target}?mode=ro", uri=True)


def migrate(source_url: str, target_url: str, progress: Callable[[str], None] = print) -> dict[str, int]:
    """Copy the SQLite database at `source_url` into the empty PostgreSQL database at `target_url`;
    returns the rows copied per table. Refused (nothing written) for a non-empty target."""
    target = parse_database_url(target_url)
    if target.backend != "postgresql":
        raise Refused(f"the target must be a postgresql:// URL, got a {target.backend} one")
    source = _open_source(source_url)
    import psycopg

    from memory_service.store.postgresql import PostgresStore

    PostgresStore(target.target, pool_size=1).close()  # the schema, created as Memory creates it
    copied: dict[str, int] = {}
    with closing(source), psycopg.connect(target.target) as conn:
        held = {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # type: ignore[index]
                for table, _, _ in TABLES}
        if any(held.values()):
            found = ", ".join(f"{count} {table}" for table, count in held.items() if count)
            raise Refused(f"the target already holds data ({found}); migrate into an empty database or schema")
        with conn.transaction(), conn.cursor() as cursor:
            for table, columns, order in TABLES:
                total = source.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                done, batch = 0, []
                for row in _rows(source, table, columns, order):
                    batch.append(row)
                    if len(batch) == BATCH:
                        cursor.executemany(_insert_sql(table, columns), batch)
                        done, batch = done + len(batch), []
                        progress(f"migrate: {table} {done}/{total}")
                if batch:
                    cursor.executemany(_insert_sql(table, columns), batch)
                    done += len(batch)
                progress(f"migrate: {table} {done}/{total} copied")
                copied[table] = done
            # New messages continue the global order after the copied ones.
            cursor.execute("SELECT setval(pg_get_serial_sequence('messages', 'seq_global'),"
                           " COALESCE(MAX(seq_global), 0) + 1, false) FROM messages")
    return copied


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memory_service.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the SQLite database: sqlite:///relative.db or sqlite:////absolute.db")
    parser.add_argument("target", help="an empty PostgreSQL database: postgresql://user@host:5432/db"
                                       " (?options=-csearch_path%%3Dschema for a schema other than public)")
    args = parser.parse_args(argv)
    try:
        copied = migrate(args.source, args.target)
    except (Refused, StoreUnavailable, ConfigError) as exc:
        print(f"migrate: refused: {exc}", file=sys.stderr)
        return 2
    print(f"migrate: done, {sum(copied.values())} rows in {len(copied)} tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
