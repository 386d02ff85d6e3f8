"""CPU time of processes from /proc: what a request costs, independent of how busy the machine is.

Throughput ratios on two shared cores swing by 15-20 points between runs; the CPU time a process
spends per request moves much less, because it does not count the time the process waited for a
core. Figures are user + system time (``/proc/PID/stat`` fields 14 and 15) in seconds.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (its threads included)."""
    fields = _stat_fields(pid)
    # After the name: state is index 0, so utime (field 14) is 11 and stime (15) is 12.
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(_stat_fields(int(stat.parent.name))[1]) == parent:
                found.append(int(stat.parent.name))
    return found


def tree_seconds(root: int) -> float:
    """CPU seconds of ``root`` and its children, living and reaped.

    A PostgreSQL backend that exits is added to the postmaster's cumulative child times (fields
    16 and 17), so backends that come and go during a run are still counted.
    """
    total = 0.0
    with contextlib.suppress(OSError):
        fields = _stat_fields(root)
        total += sum(int(f) for f in fields[11:15]) / TICKS
    for child in children(root):
        with contextlib.suppress(OSError):
            total += process_seconds(child)
    return total


@dataclass
class CpuWindow:
    """CPU seconds used by the service and by the database between ``start`` and ``stop``."""

    service_pid: int | None
    postmaster_pid: int | None
    service_s: float = 0.0
    database_s: float = 0.0

    def _read(self) -> tuple[float, float]:
        service = process_seconds(self.service_pid) if self.service_pid else 0.0
        database = tree_seconds(self.postmaster_pid) if self.postmaster_pid else 0.0
        return service, database

    @contextlib.contextmanager
    def measuring(self) -> Iterator[CpuWindow]:
        service0, database0 = self._read()
        yield self
        service1, database1 = self._read()
        self.service_s, self.database_s = service1 - service0, database1 - database0


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])
