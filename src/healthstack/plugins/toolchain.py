"""Compiling C plugins with Debian clang-14/lld-14 (the flags of plugins/*/Makefile)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from healthstack.errors import HealthstackError

CLANG = "clang-14"
# Freestanding wasm32: no libc, no start function, exports chosen with export_name attributes.
CFLAGS = (
    "--target=wasm32",
    "-nostdlib",
    "-O2",
    "-fvisibility=hidden",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wl,--no-entry",
    "-Wl,--export-dynamic",
    "-Wl,-z,stack-size=65536",
)


def find_clang() -> str | None:
    return shutil.which(CLANG)


def compile_c(source: Path, output: Path) -> bytes:
    """Compile one C file to a wasm32 module and return its bytes."""
    clang = find_clang()
    if clang is None:
        raise HealthstackError(
            f"{CLANG} not found; install it with `make sysdeps` (clang-14 lld-14)"
        )
    proc = subprocess.run(
        [clang, *CFLAGS, "-o", str(output), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise HealthstackError(f"{CLANG} failed on {source}:\n{proc.stderr.strip()}")
    return output.read_bytes()
