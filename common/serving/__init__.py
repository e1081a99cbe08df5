"""The process around a service's app: `python -m <service>`, gunicorn's gevent worker, connection limits.

gunicorn's master imports the worker module before gevent patches anything: this package imports only
the standard library, gunicorn and gevent, never Flask or requests.
"""

from common.serving.launch import Listen, serve

__all__ = ["Listen", "serve"]
