"""``healthstack check``: verify manifests offline (schema, policies, reachability, intent)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from healthstack.errors import HealthstackError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="YAML files, folders, or - for stdin"
    )
    parser.add_argument("--kustomize", metavar="DIR", help="render DIR with kubectl kustomize")
    parser.add_argument("--crds", metavar="DIR", help="folder of CRDs for custom resources")
    parser.add_argument("--intent", metavar="FILE", help="reachability intent (allow/deny flows)")
    parser.add_argument("--format", choices=("text", "json", "sarif", "markdown"), default="text")
    parser.add_argument(
        "--severity-threshold",
        default="low",
        metavar="LEVEL",
        help="lowest severity that fails the run: low|medium|high|critical",
    )
    parser.add_argument("--config", metavar="FILE", help="severity overrides and exclusions")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--graph", metavar="FILE.svg", help="draw the reachability with Graphviz")
    parser.add_argument(
        "--matrix",
        action="store_true",
        help="print the reachability matrix (to stderr unless --format text)",
    )


def run(args: argparse.Namespace) -> int:
    # Imported here so `healthstack --help` never pays for schema or YAML imports.
    from healthstack.check import report
    from healthstack.check.registry import CHECKS

    if args.list:
        print(
            report.list_markdown(CHECKS) if args.format == "markdown" else report.list_text(CHECKS)
        )
        return 0
    if args.format == "markdown":
        raise HealthstackError("--format markdown is only for --list")
    return _check(args)


def _threshold(text: str) -> int:
    from healthstack.check.model import Severity

    try:
        return Severity.parse(text)
    except ValueError as exc:
        raise HealthstackError(f"--severity-threshold: {exc}") from None


def _check(args: argparse.Namespace) -> int:
    from healthstack.check import report
    from healthstack.check.config import load_config
    from healthstack.check.engine import make_context, run_checks
    from healthstack.check.intent import load_intent
    from healthstack.check.loader import load_kustomize, load_paths
    from healthstack.check.reachability import render_matrix
    from healthstack.check.registry import CHECKS, by_id

    threshold = _threshold(args.severity_threshold)
    if not args.paths and not args.kustomize:
        raise HealthstackError("give at least one PATH (or -) or --kustomize DIR")
    crds = Path(args.crds) if args.crds else None
    if crds is not None and not crds.is_dir():
        raise HealthstackError(f"--crds {crds}: not a folder")
    config = load_config(args.config, set(by_id()))
    objects = load_paths(args.paths) + (load_kustomize(args.kustomize) if args.kustomize else [])
    if not objects:
        # An empty input passing silently would hide a wrong path or an empty render.
        raise HealthstackError("no Kubernetes objects found in the given input")
    custom = sum(1 for o in objects if "." in o.api_version.split("/")[0])
    if crds is None and custom:
        print(f"note: {custom} custom resource(s) not schema-validated: pass --crds DIR",
              file=sys.stderr)  # fmt: skip
    ctx = make_context(objects, crds, load_intent(args.intent) if args.intent else None)
    findings = run_checks(ctx, config)
    if args.graph:
        from healthstack.check.graph import write_svg

        write_svg(ctx, Path(args.graph))
    if args.matrix:
        print(render_matrix(ctx.net), file=sys.stdout if args.format == "text" else sys.stderr)
    intent = ctx.intent
    source = "inferred" if intent is None or intent.inferred else intent.file
    if intent is not None and intent.inferred:
        print(f"note: no --intent: reachability checked against {len(intent.flows)} flow(s) "
              "inferred from the manifests", file=sys.stderr)  # fmt: skip
    if args.format == "text":
        print(report.text(findings))
    elif args.format == "json":
        print(report.as_json(findings, source))
    else:
        print(report.sarif(findings, CHECKS, source))
    return 1 if any(f.severity >= threshold for f in findings) else 0
