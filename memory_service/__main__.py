"""`python -m memory_service`: the Memory Service under gunicorn + gevent on MEMORY_SERVICE_PORT."""

from __future__ import annotations

from collections.abc import Mapping

from common.config import UnusableSetting
from common.serving import Listen, serve
from memory_service.config import load_config
from memory_service.store import StoreUnavailable, open_store


def check_database(values: Mapping[str, str] | None = None) -> None:
    """Open the database once, creating it as the service would, so a DATABASE_URL that cannot be used
    (a directory, a file that is no database, a place this user may not write) is one line at start
    instead of a worker's traceback."""
    settings = load_config(values)
    try:
        open_store(settings, pool_size=1).close()
    except StoreUnavailable as exc:
        raise UnusableSetting("DATABASE_URL", str(exc)) from None


def prepare() -> Listen:
    settings = load_config()
    check_database()
    return Listen(settings.host, settings.port, "MEMORY_SERVICE_PORT")


if __name__ == "__main__":
    serve("memory_service.app:create_app()", prepare)
