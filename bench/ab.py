"""Two versions of the service side by side: ``python -m bench.ab --before REV [--after REV]``.

Throughput ratios on two shared cores swing by 15-20 points between runs, so "did this change
make requests cheaper" is answered here by the service process's CPU time per request (user +
system from ``/proc``, over the measured window), for two source trees running at the same time:
each its own embedded PostgreSQL migrated by its own code, the same seed (Patients and vital
signs: what every version since issue 8 accepts), and wrk runs alternated before/after, ``--pairs``
times per case. A revision is checked out with ``git worktree add --detach`` into a temporary
directory (removed afterwards); ``--after`` defaults to this tree. ``--profile`` also samples both
services with py-spy and prints the functions whose share of samples changed most.

Prints, per case, the median [min-max] of CPU ms per request and of req/s on each side and the
ratio of the CPU medians; writes bench/results/ab.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench import workload
from bench.common import RESULTS, free_port, launch, service_env, wrk
from bench.cpu import CpuWindow
from bench.profile import py_spy, self_shares
from bench.seed import seed
from bench.suite import LUA
from healthstack.core.crypto import Keyring
from healthstack.ops.processes import serve_command
from healthstack.service.embedded_pg import SUPERUSER, EmbeddedPostgres

REPO = Path(__file__).resolve().parents[1]
SCOPES = "user/*.cruds system/*.cruds"
CASES = ("Patient read", "Patient search", "Observation search", "Observation $lastn")


@dataclass
class Side:
    label: str
    src: Path
    base_url: str = ""
    pid: int = 0
    token: str = ""
    cases: dict[str, workload.Case] = field(default_factory=dict)
    runs: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (CPU ms, req/s)


def _in_tree(src: Path, code: str) -> str:
    """Run ``code`` with that tree's package (its migrations, its token format)."""
    env = {"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{src}: {done.stderr.strip()[-800:]}")
    return done.stdout.strip()


@contextlib.contextmanager
def checkout(revision: str | None) -> Iterator[Path]:
    """``src`` of ``revision`` (a worktree of this repository), or of this tree for None."""
    if revision is None:
        yield REPO / "src"
        return
    where = Path(tempfile.mkdtemp(prefix="hs-ab-")) / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(where),
                    revision], check=True)  # fmt: skip
    try:
        yield where / "src"
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)],
                       check=False)  # fmt: skip


@contextlib.contextmanager
def started(side: Side, patients: int, per_patient: int) -> Iterator[Side]:
    """``side``'s database and service, seeded, with its cases' request paths."""
    with tempfile.TemporaryDirectory(prefix="hs-ab-pg-") as work:
        pg = EmbeddedPostgres(Path(work) / "pg")
        try:
            pg.init()
            pg.start()
            pg.ensure_database()
            url = pg.url(SUPERUSER)
            _in_tree(side.src, f"from healthstack.service import migrate; migrate.upgrade({url!r})")
            env = service_env(pg, POOL_SIZE="10", PYTHONPATH=str(side.src))
            side.token = _in_tree(side.src, "from healthstack.security.tokens import mint_dev_token"
                                  f"; print(mint_dev_token({env['SECRET_KEY_BASE']!r}, 'bench', "
                                  f"{SCOPES!r}, ttl_seconds=3600))")  # fmt: skip
            port = free_port()
            with launch(serve_command(port), env, port) as running:
                side.base_url, side.pid = running.base_url, running.process.pid
                seeded = seed(
                    side.base_url, side.token, patients, per_patient, with_conditions=False
                )
                keyring = Keyring(bytes.fromhex(env["ENCRYPTION_KEY"]))
                side.cases = {c.name: c for c in workload.reads(seeded, keyring)
                              if c.name.startswith(CASES)}  # fmt: skip
                yield side
        finally:
            pg.destroy()


def measure(side: Side, name: str, seconds: float, spy: Path | None) -> None:
    case = side.cases[name]
    data = Path(tempfile.mkstemp(prefix="hs-ab-", suffix=".txt")[1])
    data.write_text("\n".join(case.paths) + "\n")
    run = dict(connections=32, script=LUA / "paths.lua", script_args=[str(data)],
               headers=[f"Authorization: Bearer {side.token}"])  # fmt: skip
    wrk(side.base_url, seconds=1, **run)  # type: ignore[arg-type]
    sampler = py_spy(side.pid, seconds - 1, spy, "raw") if spy else None
    window = CpuWindow(side.pid, None)
    with window.measuring():
        result = wrk(side.base_url, seconds=seconds, **run)  # type: ignore[arg-type]
    if sampler is not None:
        sampler.wait()
    data.unlink()
    if result.errors:  # socket errors and non-2xx answers
        raise SystemExit(f"{side.label} {name}: {result.errors} failed requests")
    side.runs.setdefault(name, []).append((window.service_s * 1000 / result.requests,
                                           result.requests_per_s))  # fmt: skip


def _median_range(values: list[float], digits: int) -> str:
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def report(before: Side, after: Side, name: str) -> str:
    line = f"{name:38}"
    for side in (before, after):
        cpu, rps = [c for c, _ in side.runs[name]], [r for _, r in side.runs[name]]
        line += f"  {side.label}: {_median_range(cpu, 3)} ms, {_median_range(rps, 0)} req/s"
    ratio = statistics.median(c for c, _ in after.runs[name]) / statistics.median(
        c for c, _ in before.runs[name]
    )
    return f"{line}  after/before CPU x{ratio:.2f}"


def shifted(before: Path, after: Path, top: int = 15) -> str:
    """The functions whose share of the service's samples moved most between the two sides."""
    old, new = self_shares(before), self_shares(after)
    moved = sorted(set(old) | set(new), key=lambda f: -abs(new.get(f, 0) - old.get(f, 0)))
    rows = [f"  {old.get(f, 0):6.1%} -> {new.get(f, 0):6.1%}  {f}" for f in moved[:top]]
    return "\n".join(["self share, before -> after:", *rows])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("--before", required=True, help="git revision")
    parser.add_argument("--after", default=None, help="git revision (default: this tree)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--per-patient", type=int, default=100)
    parser.add_argument("--cases", nargs="*", default=list(CASES), help="case name prefixes")
    parser.add_argument("--profile", action="store_true", help="py-spy both sides, last pair")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        old = stack.enter_context(checkout(args.before))
        new = stack.enter_context(checkout(args.after))
        sides = [stack.enter_context(started(Side(label, src), args.patients, args.per_patient))
                 for label, src in (("before", old), ("after", new))]  # fmt: skip
        before, after = sides
        for name in (n for n in after.cases if n.startswith(tuple(args.cases))):
            for pair in range(args.pairs):
                for side in sides:
                    last = args.profile and pair == args.pairs - 1
                    spy = RESULTS / f"ab-{side.label}.txt" if last else None
                    measure(side, name, args.seconds, spy)
            print(report(before, after, name), flush=True)
            if args.profile:
                print(shifted(RESULTS / "ab-before.txt", RESULTS / "ab-after.txt"), flush=True)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "ab.json").write_text(json.dumps({s.label: s.runs for s in sides}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
