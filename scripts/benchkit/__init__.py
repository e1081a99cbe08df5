"""Pieces of scripts/bench.py: processes, a light HTTP/SSE client, the scenarios, the chart."""
