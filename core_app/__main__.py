"""`python -m core_app`: the Core App under gunicorn + gevent on PORT. With CORTEX_DISTRIBUTED_MODE unset
(false) it runs Memory and Cognition inside the same process: the whole system in one command."""

from __future__ import annotations

from werkzeug.utils import import_string

from common.serving import Listen, serve
from core_app.config import load_config
from core_app.embedded import embedded_values

# Named, not imported, like the embedded apps (core_app/embedded.py): the services never import each other.
EMBEDDED_MEMORY_CHECK = "memory_service.__main__:check_database"


def prepare() -> Listen:
    settings = load_config()
    if not settings.distributed:
        import_string(EMBEDDED_MEMORY_CHECK)(embedded_values(settings.values))
    return Listen(settings.host, settings.port, "PORT")


if __name__ == "__main__":
    serve("core_app.app:create_app()", prepare)
