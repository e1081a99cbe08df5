"""A real nginx (Debian's package) in front of Core processes, run from the project's own files in
deploy/nginx: nginx.conf and cortex.conf as they are, upstream.conf with the test's servers in place of
honcho's ports; only `listen` (a free port) and, for one variant, the read timeout change."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import requests

from tests.engines import required
from tests.system.support.harness import REPO, Process, free_port
from tests.system.support.polling import wait_until

DEPLOY = REPO / "deploy" / "nginx"


def nginx_binary() -> str:
    """The nginx program; skipped with the reason when it is missing (a failure under
    CORTEX_REQUIRE_BACKENDS=1, as for the engines: .ci/run installs it)."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)),
                                          None)
    if found:
        return found
    reason = "nginx is not installed (apt-get install nginx-light)"
    if required():
        pytest.fail(f"{reason} (CORTEX_REQUIRE_BACKENDS=1: it is required here)", pytrace=False)
    pytest.skip(reason)


def replace_once(text: str, pattern: str, replacement: str) -> str:
    changed, count = re.subn(pattern, replacement, text, flags=re.M)
    assert count == 1, f"expected one match of {pattern!r} in the project's nginx files, found {count}"
    return changed


class Nginx(Process):
    """One nginx master in the foreground, its configuration, pid file and temporary files under `tmp`,
    its error and access logs in `tmp`/nginx.log."""

    def __init__(self, tmp: Path, servers: list[str], read_timeout: str | None = None) -> None:
        binary = nginx_binary()
        self.port = free_port()
        conf, prefix = tmp / "conf", tmp / "prefix"
        conf.mkdir(parents=True)
        prefix.mkdir()
        shutil.copy(DEPLOY / "nginx.conf", conf / "nginx.conf")
        server = replace_once((DEPLOY / "cortex.conf").read_text(), r"^(\s*)listen 8000;$",
                              rf"\g<1>listen 127.0.0.1:{self.port};")
        if read_timeout is not None:
            server = replace_once(server, r"^(\s*)proxy_read_timeout \S+;$",
                                  rf"\g<1>proxy_read_timeout {read_timeout};")
        (conf / "cortex.conf").write_text(server)
        upstream = re.sub(r"^\s*server 127\.0\.0\.1:[0-9]+;\n", "", (DEPLOY / "upstream.conf").read_text(), flags=re.M)
        lines = "".join(f"    server {address};\n" for address in servers)
        (conf / "upstream.conf").write_text(replace_once(upstream, r"^(upstream cortex_web \{\n)", rf"\g<1>{lines}"))
        directives = "daemon off;"
        if os.geteuid() == 0:
            # Run as root, nginx would start its workers as `nobody`, who cannot enter pytest's private
            # temporary directory where the request bodies it buffers go.
            directives += " user root;"
        super().__init__([binary, "-p", f"{prefix}/", "-c", str(conf / "nginx.conf"), "-g", directives], {},
                         tmp / "nginx.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        super().start()

        def answering() -> bool:
            if not self.running():
                raise AssertionError(f"nginx exited with {self.returncode}:\n{self.log_tail()}")
            try:
                return requests.get(f"{self.url}/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(answering, 15, message=f"nginx on {self.port} to answer /health from the Core")
        return self
