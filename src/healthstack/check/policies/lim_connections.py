"""HS-LIM-002: the database connections a namespace's services can open fit the database.

Each pod opens up to ``POOL_SIZE`` connections; at the HPA's ``maxReplicas`` plus the rollout
surge that is ``POOL_SIZE x (maxReplicas + maxSurge)``, which must stay below PostgreSQL's
``max_connections`` (default 100, 3 reserved for superusers). Behind a transaction-mode PgBouncer
(a CloudNativePG ``Pooler``, with the service told so by ``DATABASE_POOLER=pgbouncer``) the
clients must fit PgBouncer's ``max_client_conn`` and PgBouncer's server connections the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation, long_running, own_containers
from healthstack.check.policies.limits import (
    POSTGRES_DEFAULT_MAX_CONNECTIONS,
    peak_pods,
    pod_settings,
)

RESERVED = 3  # superuser_reserved_connections' default
_MAX_CONN_ARG = re.compile(r"max_connections=(\d+)")


def _database_limit(db: K8sObject) -> int:
    if db.kind == "Cluster":
        params = (db.spec.get("postgresql") or {}).get("parameters") or {}
        return int(params.get("max_connections", POSTGRES_DEFAULT_MAX_CONNECTIONS))
    words = " ".join(
        str(w)
        for c in ((db.spec.get("template") or {}).get("spec") or {}).get("containers") or []
        for w in [*(c.get("command") or []), *(c.get("args") or [])]
    )
    found = _MAX_CONN_ARG.search(words)
    return int(found.group(1)) if found else POSTGRES_DEFAULT_MAX_CONNECTIONS


def _databases(ctx: Context, namespace: str) -> list[K8sObject]:
    found = [
        o
        for o in ctx.inv.of_kind("Cluster")
        if o.api_version.startswith("postgresql.cnpg.io/") and o.namespace == namespace
    ]
    for w in long_running(ctx):
        images = " ".join(str(c.get("image", "")).lower() for c in own_containers(w))
        in_ns = w.obj.kind == "StatefulSet" and w.namespace == namespace
        if in_ns and ("postgres" in images or "timescale" in images):
            found.append(w.obj)
    return found


def _clients(ctx: Context, namespace: str) -> tuple[int, bool]:
    """(connections the namespace's services may open at peak, whether all go to PgBouncer)."""
    total, pooled = 0, True
    for w in long_running(ctx):
        if w.namespace != namespace:
            continue
        for c in w.containers:  # init containers finish before the service opens its pool
            settings = pod_settings(ctx, w, c)
            if "POOL_SIZE" in settings and settings["POOL_SIZE"].isdigit():
                total += int(settings["POOL_SIZE"]) * peak_pods(ctx, w)
                pooled = pooled and settings.get("DATABASE_POOLER", "").lower() == "pgbouncer"
    return total, pooled


def _pooler_violations(pooler: K8sObject, clients: int, limit: int) -> Iterator[Violation]:
    params = (pooler.spec.get("pgbouncer") or {}).get("parameters") or {}
    instances = int(pooler.spec.get("instances", 1))
    mode = (pooler.spec.get("pgbouncer") or {}).get("poolMode", "session")
    if mode != "transaction":
        yield Violation(pooler, f"poolMode {mode}: each client holds a server connection")
    accepts = instances * int(params.get("max_client_conn", 100))
    if clients > accepts:
        yield Violation(pooler, f"{clients} client connections at peak > {accepts} max_client_conn")
    opens = instances * int(params.get("default_pool_size", 20))
    if opens > limit - RESERVED:
        yield Violation(
            pooler, f"{opens} server connections > max_connections {limit} - {RESERVED}"
        )


def evaluate(ctx: Context) -> Iterator[Violation]:
    for namespace in sorted({w.namespace for w in long_running(ctx)}):
        databases = _databases(ctx, namespace)
        clients, pooled = _clients(ctx, namespace)
        if not databases or not clients:
            continue
        db = databases[0]
        limit = _database_limit(db)
        poolers = [p for p in ctx.inv.of_kind("Pooler") if p.namespace == namespace]
        if pooled and poolers:
            for pooler in poolers:
                yield from _pooler_violations(pooler, clients, limit)
        elif clients > limit - RESERVED:
            yield Violation(
                db,
                f"services may open {clients} connections (POOL_SIZE x (max replicas + surge)) "
                f"> max_connections {limit} - {RESERVED} reserved, and no PgBouncer in front",
            )


CHECK = Check(
    id="HS-LIM-002",
    title="Database connections at peak scale fit the database or a pooler",
    severity=Severity.HIGH,
    scope=("Deployment", "HorizontalPodAutoscaler", "Cluster", "StatefulSet", "Pooler"),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 SC-5"),
    remediation="Put a transaction-mode PgBouncer (CloudNativePG Pooler) in front and set "
    "DATABASE_POOLER=pgbouncer, or keep POOL_SIZE x (maxReplicas + maxSurge) below "
    "max_connections - 3.",
    evaluate=evaluate,
    family="deployment limits",
)
