"""What the three services share, by role.

- top level, the shared vocabulary: `errors` (one hierarchy, one shape), `config` (reading settings),
  `models` (field types and limits of tool arguments), `credentials` (how e-mails and passwords compare),
  `sse` (the Event and streaming helpers), `headers`, `request_ids` and `tracing` (what crosses every call),
  `logs` (the text and JSON log lines), `metrics` (every Prometheus metric and its recording function);
- `server/`: what turns a service into a Flask app speaking the tool/resource protocol (app factory base,
  error rendering, body parsing, service-token auth, the protocol blueprint, `/health`, `/metrics`);
- `client/`: how a service calls another (the service client, its transport, retry policy, breaker,
  dependency monitor, TLS, and the in-process adapter of the embedded mode);
- `mcp/`: the official Model Context Protocol endpoint over the same tools and resources;
- `serving/`: the process around the app (`python -m <service>`, the gunicorn gevent worker, connection
  limits), imported by gunicorn's master before gevent patches anything, so it stays free of Flask.
"""

__all__ = ["VERSION"]

VERSION = "0.1.0"
