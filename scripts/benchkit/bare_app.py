"""The reference for tool-call throughput: a bare Flask JSON endpoint under the same gunicorn settings."""

from __future__ import annotations

from flask import Flask, jsonify, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/echo")
    def echo():  # type: ignore[no-untyped-def]
        body = request.get_json()
        return jsonify({"result": {"echo": body.get("arguments", {})}})

    @app.get("/health")
    def health():  # type: ignore[no-untyped-def]
        return jsonify({"status": "healthy"})

    return app
