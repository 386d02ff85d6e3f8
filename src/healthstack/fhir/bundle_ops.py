"""Operations answered inside batch and transaction ``GET`` entries: ``Observation/$lastn`` and
``Patient/{id}/$everything``, authorized, confined and audited exactly as their REST routes."""

from __future__ import annotations

from typing import Any

import asyncpg

from healthstack.fhir import everything, ops, vitals
from healthstack.fhir.access import Caller
from healthstack.fhir.http import bundle_entry

# (type, whether the URL names an instance, operation)
SUPPORTED = frozenset({("Observation", False, "$lastn"), ("Patient", True, "$everything")})


def lastn_bundle(base: str, versions: list[Any]) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if versions:
        bundle["entry"] = [bundle_entry(base, v, {"mode": "match"}) for v in versions]
    return bundle


async def run(
    eng: ops.Engine, caller: Caller, conn: asyncpg.Connection, base: str, operation: str,
    rid: str | None, params: list[tuple[str, str]],
) -> dict[str, Any]:  # fmt: skip
    """The operation's Bundle (the entry's ``resource``)."""
    if operation == "$lastn":
        return lastn_bundle(base, await vitals.lastn(eng, caller, conn, params))
    assert rid is not None  # parse_entry admits only SUPPORTED forms
    wanted = everything.parse(eng.keyring, rid, params)
    result = await everything.everything(eng.store, caller, conn, wanted)
    return everything.bundle(base, result, f"{base}/Patient/{rid}/$everything", bundle_entry)
