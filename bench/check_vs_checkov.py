"""`healthstack check` vs checkov on the same rendered production overlay.

Both read one file (`kubectl kustomize deploy/overlays/prod`, rendered once, not timed) and run as
fresh processes, several times each; we report medians and the ratio. Checkov runs only its
Kubernetes framework with --skip-download (offline). Our in-process time (load + schema + every
check, interpreter already warm) is reported too: it is the figure the issue's "well under a
second" refers to. Run: `.venv/bin/python -m bench.check_vs_checkov [runs]`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT / "../shared/crds"
CHECKOV = ROOT / ".tools/checkov/bin/checkov"
HEALTHSTACK = ROOT / ".venv/bin/healthstack"
RESULTS = Path(__file__).with_name("results")


def render(overlay: Path) -> str:
    kubectl = Path(sys.executable).parent / "kubectl"
    return subprocess.run(
        [str(kubectl), "kustomize", str(overlay)], capture_output=True, text=True, check=True
    ).stdout


def timed(argv: list[str], ok_codes: tuple[int, ...]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok_codes:
        raise SystemExit(f"{argv[0]} exited {proc.returncode}: {proc.stderr[-500:]}")
    return elapsed


def in_process(file: Path, runs: int) -> list[float]:
    from healthstack.check.engine import make_context, run_checks
    from healthstack.check.loader import load_paths

    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run_checks(make_context(load_paths([str(file)]), CRDS))
        times.append(time.perf_counter() - start)
    return times


def main(runs: int = 5) -> dict[str, object]:
    if not CHECKOV.exists():
        raise SystemExit(f"{CHECKOV} missing: run `make tools`")
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "prod.yaml"
        file.write_text(render(ROOT / "deploy/overlays/prod"), encoding="utf-8")
        ours = [
            timed([str(HEALTHSTACK), "check", str(file), "--crds", str(CRDS)], (0, 1))
            for _ in range(runs)
        ]
        theirs = [
            timed(
                [
                    str(CHECKOV),
                    "--framework",
                    "kubernetes",
                    "--skip-download",
                    "--quiet",
                    "--compact",
                    "-o",
                    "json",
                    "-f",
                    str(file),
                ],
                (0, 1),
            )
            for _ in range(runs)
        ]
        warm = in_process(file, runs)
    result = {
        "file": "kubectl kustomize deploy/overlays/prod",
        "runs": runs,
        "healthstack_check_process_s": {"median": statistics.median(ours), "all": ours},
        "healthstack_check_in_process_s": {"median": statistics.median(warm), "all": warm},
        "checkov_process_s": {"median": statistics.median(theirs), "all": theirs},
        "ratio_checkov_over_healthstack": statistics.median(theirs) / statistics.median(ours),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "check_vs_checkov.json").write_text(json.dumps(result, indent=2), "utf-8")
    return result


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5), indent=2))
