"""Write requirements/runtime.lock: the runtime dependencies, pinned, each with its sha256.

pip resolves ``[project].dependencies`` (no extras) without installing anything and reports what
it would download; every archive's hash goes into the lock, which the image and CI install with
``--require-hashes``. Usage: ``python -m healthstack.ops.lockfile requirements/runtime.lock``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from healthstack.errors import HealthstackError

HEADER = """\
# The runtime dependencies of `healthstack serve` and `healthstack db migrate`, pinned with hashes
# (the image and CI install with --require-hashes). Resolved for CPython 3.11 on linux/x86_64 from
# pyproject.toml's [project].dependencies; regenerate with `make lock` after changing them.
"""


def lock_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for item in sorted(report.get("install", []), key=lambda i: i["metadata"]["name"].lower()):
        name = re.sub(r"[-_.]+", "-", str(item["metadata"]["name"])).lower()  # PEP 503
        if name == "healthstack":
            continue
        archive = (item.get("download_info") or {}).get("archive_info") or {}
        digest = (archive.get("hashes") or {}).get("sha256")
        if not digest:
            raise HealthstackError(f"pip reported no sha256 for {name}: cannot lock it")
        lines.append(f"{name}=={item['metadata']['version']} \\\n    --hash=sha256:{digest}")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m healthstack.ops.lockfile OUTPUT", file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parents[3]
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run",
                        "--ignore-installed", "--report", str(report_path), str(root)],
                       check=True)  # fmt: skip
        report = json.loads(report_path.read_text("utf-8"))
    Path(argv[0]).write_text(HEADER + "\n" + "\n".join(lock_lines(report)) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
