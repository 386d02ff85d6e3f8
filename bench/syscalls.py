"""System calls per request of the service under one case: ``python -m bench.syscalls [CASE]``.

Starts the service of this tree (or ``--rev REV``, as ``bench.ab`` does) on its own PostgreSQL,
seeds it, runs wrk on the case and counts the service process's system calls with ``strace -c``
over 5 s of load. Counts are exact where CPU time is noisy: a change that removes a ``send()`` per
response shows as one fewer ``write`` per request whatever the machine is doing.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ab import Side, checkout, started
from bench.common import wrk
from bench.suite import LUA


def count(side: Side, name: str, seconds: float) -> tuple[int, dict[str, int]]:
    case = side.cases[name]
    with tempfile.TemporaryDirectory(prefix="hs-sys-") as work:
        data, out = Path(work) / "paths.txt", Path(work) / "strace.txt"
        data.write_text("\n".join(case.paths) + "\n")
        run = dict(connections=32, script=LUA / "paths.lua", script_args=[str(data)],
                   headers=[f"Authorization: Bearer {side.token}"])  # fmt: skip
        wrk(side.base_url, seconds=1, **run)  # type: ignore[arg-type]
        tracer = subprocess.Popen(["strace", "-c", "-o", str(out), "-p", str(side.pid)],
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(0.5)  # attached before the measured load starts
        result = wrk(side.base_url, seconds=seconds, **run)  # type: ignore[arg-type]
        tracer.terminate()
        tracer.wait()
        calls = parse_strace(out.read_text())
    return result.requests, calls


def parse_strace(summary: str) -> dict[str, int]:
    """Calls per system call from ``strace -c`` (``% time seconds usecs/call calls [errors]
    syscall``), without the total line."""
    calls = {}
    for line in summary.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[3].isdigit() and parts[-1] != "total":
            calls[parts[-1]] = int(parts[3])
    return calls


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.syscalls", description=__doc__)
    parser.add_argument("case", nargs="?", default="Patient read", help="case name prefix")
    parser.add_argument("--rev", default=None, help="git revision (default: this tree)")
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args(argv)
    if shutil.which("strace") is None:
        raise SystemExit("strace is missing: apt-get install strace")
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(checkout(args.rev))
        side = stack.enter_context(started(Side(args.rev or "this tree", src), 100, 10))
        name = next(n for n in side.cases if n.startswith(args.case))
        requests, calls = count(side, name, args.seconds)
    print(f"{name} ({side.label}): {requests} requests")
    for call, n in sorted(calls.items(), key=lambda item: -item[1]):
        print(f"  {call:16} {n / requests:8.2f} per request")
    print(f"  {'all':16} {sum(calls.values()) / requests:8.2f} per request")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
