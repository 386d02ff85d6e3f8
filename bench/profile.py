"""Profile the service under one case's load: ``python -m bench.profile [CASE ...]``.

Seeds a small data set, then per case runs wrk while ``py-spy record`` samples the service process
(``--idle`` off: only CPU time counts). Writes a flame graph per case (bench/results/profile-*.svg)
and prints the functions with the most inclusive and self time, from py-spy's collapsed stacks.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from bench import workload
from bench.common import RESULTS, free_port, healthstack_command, launch, postgres, service_env
from bench.cpu import CpuWindow
from bench.seed import seed
from bench.suite import SCOPES, Options, api_load
from healthstack.core.crypto import Keyring
from healthstack.security.tokens import mint_dev_token

TOP = 25


def py_spy(
    pid: int, seconds: float, output: Path, fmt: str, native: bool = False
) -> subprocess.Popen[bytes]:
    command = ["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)),
               "--rate", "200", "--format", fmt, "--output", str(output)]  # fmt: skip
    # --native shows time inside C code (asyncpg's protocol, system calls); it has to pause the
    # process to unwind native stacks, so it cannot be combined with --nonblocking.
    command.append("--native" if native else "--nonblocking")
    binary = Path(sys.executable).with_name("py-spy")
    if not binary.exists():
        raise SystemExit(f"{binary} is missing: .venv/bin/pip install py-spy")
    return subprocess.Popen(
        [str(binary), *command[1:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _samples(collapsed: Path) -> Iterator[tuple[list[str], int]]:
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        yield [_short(f) for f in stack.split(";")], int(count_text)


def self_shares(collapsed: Path) -> dict[str, float]:
    """Each function's share of the samples in which it was the running frame."""
    counts: collections.Counter[str] = collections.Counter()
    for frames, count in _samples(collapsed):
        counts[frames[-1]] += count
    total = sum(counts.values()) or 1
    return {frame: n / total for frame, n in counts.items()}


def summarize(collapsed: Path, top: int = TOP) -> str:
    """Inclusive and self share of samples per function (file:function), from collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, count in _samples(collapsed):
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        self_time[frames[-1]] += count
    if total == 0:
        return "no samples"
    out = [f"{total} samples", "inclusive:"]
    out += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    out += ["self:"]
    out += [f"  {n / total:6.1%}  {f}" for f, n in self_time.most_common(top)]
    return "\n".join(out)


def _short(frame: str) -> str:
    # py-spy frames look like "function (path/to/module.py:123)"; keep function and file name.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    marker = "site-packages/"
    path = path.split(marker, 1)[1] if marker in path else path.split("/src/", 1)[-1]
    return f"{name} ({path})"


def profile_case(
    base: str, pid: int, case: workload.Case, token: str, options: Options, native: bool = False
) -> str:
    slug = case.name.split(" (")[0].replace(" ", "-").replace("$", "").lower()
    RESULTS.mkdir(exist_ok=True)
    outputs = {fmt: RESULTS / f"profile-{slug}.{ext}" for fmt, ext in (("flamegraph", "svg"),
                                                                       ("raw", "txt"))}  # fmt: skip
    spies = [py_spy(pid, options.seconds, path, fmt, native) for fmt, path in outputs.items()]
    load = threading.Thread(
        target=api_load,
        args=(base, case, token, options, Path(tempfile.mkdtemp()), CpuWindow(pid, None)),
    )
    load.start()
    for spy in spies:
        _, err = spy.communicate()
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy failed: {err.decode()[-500:]}")
    load.join()
    return f"== {case.name} (flame graph {outputs['flamegraph']})\n{summarize(outputs['raw'])}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("cases", nargs="*", help="case names (prefixes); default: all")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--native", action="store_true", help="include C frames (py-spy --native)")
    args = parser.parse_args(argv)
    options = Options(seconds=args.seconds, warmup=1, patients=200, per_patient=100)
    with postgres() as pg:
        env = service_env(pg, POOL_SIZE=str(options.pool_size))
        port = free_port()
        with launch(healthstack_command(port), env, port) as running:
            token = mint_dev_token(env["SECRET_KEY_BASE"], "bench", SCOPES, ttl_seconds=3600)
            seeded = seed(running.base_url, token, options.patients, options.per_patient)
            keyring = Keyring(bytes.fromhex(env["ENCRYPTION_KEY"]))
            cases = [
                *workload.reads(seeded, keyring),
                workload.ingest(seeded.patient_ids[0], keyring),
            ]
            for case in cases:
                if not args.cases or any(case.name.startswith(c) for c in args.cases):
                    pid = running.process.pid
                    print(profile_case(running.base_url, pid, case, token, options, args.native))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
