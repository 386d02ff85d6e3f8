"""``python -m bench`` (``make bench``): the suite with its table, JSON in bench/results/suite.json."""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench import table
from bench.common import RESULTS
from bench.suite import Options, run


def parse(argv: list[str]) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="per measured run")
    parser.add_argument("--warmup", type=float, default=defaults.warmup)
    parser.add_argument("--connections", type=int, default=defaults.connections)
    parser.add_argument("--ingest-connections", type=int, default=defaults.ingest_connections)
    parser.add_argument("--pool-size", type=int, default=defaults.pool_size)
    parser.add_argument("--patients", type=int, default=defaults.patients)
    parser.add_argument("--per-patient", type=int, default=defaults.per_patient,
                        help="Observations seeded per patient")  # fmt: skip
    parser.add_argument("--starts", type=int, default=defaults.starts, help="ready-time samples")
    parser.add_argument("--repeats", type=int, default=defaults.repeats,
                        help="runs per case; figures are medians with min-max")  # fmt: skip
    parser.add_argument("--name", default="suite", help="results file: bench/results/NAME.json")
    args = parser.parse_args(argv)
    return Options(
        seconds=args.seconds, warmup=args.warmup, connections=args.connections,
        ingest_connections=args.ingest_connections, pool_size=args.pool_size,
        patients=args.patients, per_patient=args.per_patient, starts=args.starts, repeats=args.repeats, name=args.name,
    )  # fmt: skip


def main(argv: list[str]) -> int:
    options = parse(argv)
    started = time.monotonic()
    report = run(options)
    print(table.render(report))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{options.name}.json"
    payload = table.as_json(report) | {"wall_seconds": round(time.monotonic() - started, 1)}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwritten {path} in {payload['wall_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
