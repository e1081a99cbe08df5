"""Leak checks on a Core worker: `/debug/stats`, and which TCP connections the process holds by peer, which
tells pooled keep-alive connections (bounded) from leaked ones. Linux only; reads /proc of a process the test
itself started."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import requests

from tests.system.support.polling import wait_until


def _tcp_table() -> dict[str, tuple[int, int, str]]:
    """socket inode -> (local port, remote port, state hex) for every IPv4/IPv6 TCP socket."""
    table = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            table[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state)
    return table


def tcp_connections(pid: int, ports: dict[str, int]) -> dict[str, int]:
    """Count the process's TCP sockets: `listen`, connections *to* each named port (`to_<name>`),
    connections accepted on `ports["self"]` (`clients`), and `other`."""
    table = _tcp_table()
    by_port = {port: name for name, port in ports.items()}
    counts: Counter[str] = Counter()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue  # closed while we looked
        if not target.startswith("socket:["):
            continue
        entry = table.get(target[8:-1])
        if entry is None:
            counts["other"] += 1
            continue
        local, remote, state = entry
        if state == "0A":
            counts["listen"] += 1
        elif local == ports.get("self"):
            counts["clients"] += 1
        elif remote in by_port:
            counts[f"to_{by_port[remote]}"] += 1
        else:
            counts["other"] += 1
    return dict(counts)


class Probe:
    """A Core worker's `/debug/stats` plus its TCP connections by peer. `fds_besides_pools` leaves out the
    keep-alive connections of its two client pools, which are bounded by CLIENT_POOL_SIZE and checked apart."""

    def __init__(self, core_url: str, ports: dict[str, int]) -> None:
        self.core_url = core_url
        self.ports = ports

    def stats(self) -> dict:
        return requests.get(f"{self.core_url}/debug/stats", timeout=5).json()

    def snapshot(self) -> dict:
        current = self.stats()
        tcp = tcp_connections(current["pid"], self.ports)
        pooled = tcp.get("to_memory", 0) + tcp.get("to_cognition", 0)
        return {**current, "tcp": tcp, "fds_besides_pools": current["open_fds"] - pooled}

    def idle(self, timeout: float = 15) -> dict:
        """A snapshot once no stream and no subscriber is left (a closed stream is noticed at the next
        heartbeat write)."""
        wait_until(lambda: (s := self.stats())["live_streams"] == 0 and s["subscribers"] == 0, timeout,
                   interval=0.2, message="streams and subscribers to be released")
        return self.snapshot()

    def settle(self, baseline: dict, greenlets: int, fds: int, timeout: float = 10) -> dict:
        """Poll until greenlets and fds besides the pools are within the tolerances of `baseline`; the last
        snapshot either way, for the test to assert on and report."""
        deadline = time.monotonic() + timeout
        snap = self.snapshot()
        while not within(baseline, snap, greenlets, fds) and time.monotonic() < deadline:
            time.sleep(0.2)
            snap = self.snapshot()
        return snap


def within(baseline: dict, snap: dict, greenlets: int, fds: int) -> bool:
    return (snap["greenlets"] <= baseline["greenlets"] + greenlets
            and snap["fds_besides_pools"] <= baseline["fds_besides_pools"] + fds)
