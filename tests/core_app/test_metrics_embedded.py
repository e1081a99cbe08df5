"""Single-process mode: Memory and Cognition run inside the Core, so the Core's /metrics is the only one, and
it reports what they read at scrape time (Memory's database size) beside what every app records."""

from __future__ import annotations

import re

from core_app.app import create_app
from tests.core_app.embedded_config import core_config


def test_the_cores_metrics_report_the_embedded_memorys_database_size(tmp_path):
    client = create_app(core_config(tmp_path)).test_client()
    text = client.get("/metrics").get_data(as_text=True)
    size = re.search(r'^cortex_db_size_bytes\{backend="sqlite"\} ([0-9.e+]+)$', text, re.M)
    assert size is not None, text[:2000]
    files = (tmp_path / "m.db", tmp_path / "m.db-wal")  # the database and its write-ahead log
    on_disk = sum(path.stat().st_size for path in files if path.exists())
    assert float(size.group(1)) == on_disk > 0
