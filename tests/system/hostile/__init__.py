"""Hostile callers: malformed and oversized input, other users' objects, forged tokens, abused streams and
careless deployments."""
