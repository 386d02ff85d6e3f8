"""``healthstack drill rollout|crash|db-outage|restore|all``: reliability drills (docs/drills.md).

Each drill runs real processes on loopback (service replicas, embedded PostgreSQL, HAProxy), then
its negative control: the same drill with the protection it tests removed, which must FAIL (a
drill that cannot fail proves nothing). It exits 1 when its target is missed or its control
passes. Each report (figures, verdict, control result) is printed and written as JSON. ``all`` is
what ``make drill`` runs: every drill at full length (the manifests' own durations).
"""

from __future__ import annotations

import argparse
import json
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from healthstack.ops.drills.spec import RolloutSpec, load_spec
from healthstack.ops.progress import Meter

DRILLS = ("rollout", "crash", "db-outage", "restore", "all")
# What each drill's negative control removes (docs/drills.md): the run without it must FAIL.
CONTROLS = {
    "rollout": "preStop and SHUTDOWN_DRAIN_SECONDS (both 0)",
    "crash": "conditional create (plain POST, no If-None-Exist)",
    "db-outage": "reconnection (the database returns at another address); separately, the "
    "service's database timeouts during the hang",
    "restore": "one table in the backup (fhir_resource_version dropped before backup create)",
}
FULL_ROLLOUT_REQUESTS = 10_000


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("drill", choices=DRILLS)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--kustomize",
        type=Path,
        default=Path("deploy/overlays/prod"),
        help="overlay to render with kubectl (default deploy/overlays/prod)",
    )
    source.add_argument("--manifests", type=Path, help="an already rendered multi-document YAML")
    parser.add_argument("--deployment", help="Deployment name when the manifests hold several")
    parser.add_argument(
        "--time-scale",
        type=_positive(float),
        default=1.0,
        help="multiply every duration (e.g. 0.05 in tests)",
    )
    parser.add_argument(
        "--replicas",
        type=_positive(int),
        help="override the manifests' replica count (faster short runs)",
    )
    parser.add_argument("--workers", type=_positive(int), default=8, help="concurrent load workers")
    parser.add_argument(
        "--min-requests",
        type=int,
        default=None,
        help="rollout: fail below this many requests (all: 10000)",
    )
    parser.add_argument(
        "--outage-seconds",
        type=_positive(float),
        default=10.0,
        help="db-outage: how long the database stays down (before --time-scale)",
    )
    parser.add_argument(
        "--propagation-seconds",
        type=float,
        default=5.0,
        help="rollout: how long a terminating pod still receives new connections (before scale)",
    )
    parser.add_argument(
        "--no-control", action="store_true", help="skip the negative controls (faster, proves less)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(".healthstack/drills/report.json"),
        help="write the reports here (default .healthstack/drills/report.json)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="also draw each run's latency and errors over time, with its steps, as HTML",
    )


def _rollout(spec: RolloutSpec, args: argparse.Namespace, control: bool) -> dict[str, Any]:
    from healthstack.ops.drills.rollout import run_rollout

    if control:
        spec = replace(spec, prestop_seconds=0.0, drain_seconds=0.0)

    minimum = (
        args.min_requests
        if args.min_requests is not None
        else (FULL_ROLLOUT_REQUESTS if args.drill == "all" else 0)
    )
    settle = max(0.5, spec.probe_period)
    return run_rollout(spec, workers=args.workers, min_requests=minimum, settle_s=settle).to_dict()


def _crash(spec: RolloutSpec, args: argparse.Namespace, control: bool) -> dict[str, Any]:
    from healthstack.ops.drills.crash import run_crash

    identifiers = 1000 if args.drill == "all" else 150  # per variant, searched one by one after
    return run_crash(
        spec, workers=args.workers, identifiers=identifiers, idempotent=not control
    ).to_dict()


def _outage(spec: RolloutSpec, args: argparse.Namespace, control: bool) -> dict[str, Any]:
    from healthstack.ops.drills.db_outage import run_db_outage, run_hang_without_timeouts

    scale = args.time_scale
    spec = spec.database_scaled(scale)
    timing = {
        "outage_s": max(1.0, args.outage_seconds * scale),
        "before_s": max(1.0, 3 * scale),
        "after_s": max(1.0, 5 * scale),
        "workers": args.workers,
    }
    report = run_db_outage(spec, reconnectable=not control, **timing).to_dict()
    if not control:
        return report
    # Two protections, two controls: the drill is trusted only if each one fails on its own.
    timeouts = run_hang_without_timeouts(spec, **timing).to_dict()
    return {
        "drill": "db-outage",
        "api": report["api"] and timeouts["api"],
        "passed": report["passed"] or timeouts["passed"],
        "reconnect": report,
        "timeouts": timeouts,
    }


def _restore(spec: RolloutSpec, args: argparse.Namespace, control: bool) -> dict[str, Any]:
    from healthstack.ops.drills.restore import run_restore_on

    full = args.drill == "all"
    # The wheel's PostgreSQL 18 and Debian's 15; the control needs one server to fail on.
    majors: list[int | None] = [None] if control else [None, 15]
    return run_restore_on(
        majors,
        spec,
        patients=100 if full else 6,
        observations=20 if full else 4,
        versions=3,
        drop_table="fhir_resource_version" if control else None,
    )


RUNNERS: dict[str, Callable[[RolloutSpec, argparse.Namespace, bool], dict[str, Any]]] = {
    "rollout": _rollout,
    "crash": _crash,
    "db-outage": _outage,
    "restore": _restore,
}


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}s"


def headline(report: dict[str, Any]) -> str:
    """One line per drill for the summary table."""
    name = report["drill"]
    if not report.get("api", True):
        return "FHIR API not mounted: nothing to drill"
    if name == "rollout":
        load = report["load"]
        times = ", ".join(f"{r['total_s']:.1f}s" for r in report["replicas"])
        return (
            f"{load['failed']} failed / {load['requests']} requests "
            f"({load['during_rollout']} during the replacements), p50 {load['p50_ms']} ms, "
            f"p99 {load['p99_ms']} ms, per replica {times}"
        )
    if name == "crash":
        failed = ", ".join(
            f"{k}: {v['failed_attempts_after_kill']}" for k, v in report["variants"].items()
        )
        return (
            f"{report['created_after_kill']} creates after the kill, {report['retried']} retried "
            f"on connection loss; duplicates {report['duplicates']}, lost {report['lost']} of "
            f"{report['acknowledged']} acknowledged; failed attempts by retry-on [{failed}]"
        )
    if name == "db-outage" and "reconnect" in report:  # the two controls
        return (
            f"never reconnects: {_outage_headline(report['reconnect'])}; no database timeouts: "
            f"slowest answer during the hang {_seconds(report['timeouts']['slowest_answer_s'])} "
            f"(bound {report['timeouts']['answer_bound_s']:.1f}s)"
        )
    if name == "db-outage":
        return _outage_headline(report)
    return (
        f"{report['versions_restored']}/{report['versions']} versions, "
        f"{report['audit_restored']}/{report['audit_records']} audit records, "
        f"{report['decrypted']} decrypted, chain intact {report['audit_chain_intact']}"
    )


def _outage_headline(report: dict[str, Any]) -> str:
    phases = "".join(
        f"; {kind}: {phase['lost']} lost of {phase['acknowledged']}, first write after "
        f"{_seconds(phase['write_recovery_s'])}, unready {phase['unready_during_outage']}"
        + (
            f", slowest answer {_seconds(phase['slowest_answer_s'])} "
            f"(bound {phase['answer_bound_s']:.1f}s)"
            if phase.get("answer_bound_s") is not None
            else ""
        )
        for kind in ("hang", "failover")
        if (phase := report.get(kind))
    )
    return (
        f"{report['lost']} lost of {report['acknowledged']} acknowledged writes, "
        f"unready during outage {report['unready_during_outage']}, readiness recovered "
        f"in {_seconds(report['ready_recovery_s'])}, first write after "
        f"{_seconds(report['write_recovery_s'])} (bound {report['write_bound_s']:.1f}s), "
        f"restarts {report['restarts']}{phases}"
    )


def table(reports: list[dict[str, Any]]) -> str:
    lines = ["| drill | result | figures | negative control |", "|---|---|---|---|"]
    for report in reports:
        verdict = "PASS" if report["passed"] else "FAIL"
        control = report.get("control")
        states = (
            "not run"
            if control is None
            else f"{control['removes']}: {control['verdict']} "
            f"({'as expected' if control['failed_as_expected'] else 'the drill cannot fail'}); "
            f"{headline(control['report'])}"
        )
        lines.append(f"| {report['drill']} | {verdict} | {headline(report)} | {states} |")
    return "\n".join(lines)


def run_drill(
    name: str, spec: RolloutSpec, args: argparse.Namespace, meter: Meter | None = None
) -> dict[str, Any]:
    """The drill, then its control; it passes only if it passes and its control fails."""
    report = RUNNERS[name](spec, args, False)
    report["protected_passed"] = report["passed"]
    if meter is not None:
        meter.update()
    if not args.no_control:
        print(f"drill {name}: control run without {CONTROLS[name]}", flush=True)
        control = RUNNERS[name](spec, args, True)
        if meter is not None:
            meter.update()
        report["control"] = {
            "removes": CONTROLS[name],
            "verdict": "PASS" if control["passed"] else "FAIL",
            "failed_as_expected": not control["passed"],
            "report": control,
        }
        report["passed"] = report["passed"] and not control["passed"]
    report["verdict"] = "PASS" if report["passed"] else "FAIL"
    return report


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    spec = load_spec(
        kustomize=None if args.manifests else args.kustomize,
        manifests=args.manifests,
        deployment=args.deployment,
    )
    if args.time_scale != 1.0:
        spec = spec.scaled(args.time_scale)
    if args.replicas is not None:
        spec = replace(spec, replicas=args.replicas)
    spec = replace(spec, propagation_seconds=args.propagation_seconds * args.time_scale)
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so every process and temporary
    # database the drill started is stopped by its context managers.
    signal.signal(signal.SIGTERM, _interrupt)
    names = list(RUNNERS) if args.drill == "all" else [args.drill]
    reports = []
    runs = len(names) * (1 if args.no_control else 2)  # each drill, then its control
    with Meter("drills", total=runs, unit="runs") as meter:
        for name in names:
            print(f"drill {name}: running ({spec.name} from {spec.source}, "
                  f"time scale {args.time_scale})", flush=True)  # fmt: skip
            reports.append(run_drill(name, spec, args, meter))
            print(json.dumps(reports[-1], indent=2, default=str), flush=True)
    print(table(reports))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(reports, indent=2, default=str) + "\n")
    print(f"reports written to {args.json}")
    if args.report is not None:
        from healthstack.ops.drills.report_html import render

        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(render(reports), encoding="utf-8")
        print(f"charts written to {args.report}")
    return 0 if all(r["passed"] for r in reports) else 1
