"""Header names of the service protocol, shared by the server helpers and the client."""

IDEMPOTENCY_KEY = "Idempotency-Key"
REQUEST_ID = "X-Request-ID"
