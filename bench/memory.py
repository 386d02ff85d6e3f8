"""Resident memory of a process from /proc/PID/status, sampled in a thread while load runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MIB = 1024 * 1024


def status_kib(pid: int, field: str) -> int:
    """A ``kB`` line of /proc/PID/status (VmRSS: resident now, VmHWM: resident peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0])
    raise RuntimeError(f"/proc/{pid}/status has no {field} line")


def mib(pid: int, field: str) -> float:
    return status_kib(pid, field) * 1024 / MIB


class Sampler:
    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_rss_mib = 0.0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_rss_mib = max(self.peak_rss_mib, mib(self.pid, "VmRSS"))


@contextmanager
def sampling(pid: int) -> Iterator[Sampler]:
    """The largest VmRSS seen while the block runs (sampled every 0.2 s)."""
    sampler = Sampler(pid)
    sampler.peak_rss_mib = mib(pid, "VmRSS")
    thread = threading.Thread(target=sampler._run, daemon=True)
    thread.start()
    try:
        yield sampler
    finally:
        sampler._stop.set()
        thread.join()
