"""System tests: the real services under gunicorn + gevent on loopback ports, driven over HTTP and SSE.

At the top, one file per service or feature end to end (`test_core_app.py`, `test_replies.py`,
`test_run_modes.py` ...); then by concern: `support/` (the process harness every test starts programs
with, the three-service stack, API users, stream readers, figures, a fake LLM), `faults/` (killed, frozen,
slow or misdirected services), `hostile/` (malicious input and callers), `load/` (floods, slow clients,
long work). conftest.py marks every test here `system`.
"""
