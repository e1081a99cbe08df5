"""`python -m memory_service`: the Memory Service under gunicorn + gevent on MEMORY_SERVICE_PORT."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from common.config import UnusableSetting
from common.serve import Listen, serve
from memory_service.config import load_config
from memory_service.db import Database


def check_database(values: Mapping[str, str] | None = None) -> None:
    """Open the database once, creating it as the service would, so a DATABASE_URL that cannot be used
    (a directory, a file that is no database, a place this user may not write) is one line at start
    instead of a worker's traceback."""
    settings = load_config(values)
    try:
        Database(settings.database_path, pool_size=1, synchronous=settings.sqlite_synchronous).close()
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UnusableSetting("DATABASE_URL", f"{settings.database_path} cannot be opened: {reason}") from None


def prepare() -> Listen:
    settings = load_config()
    check_database()
    return Listen(settings.host, settings.port, "MEMORY_SERVICE_PORT")


if __name__ == "__main__":
    serve("memory_service.app:create_app()", prepare)
