"""SMART v2 granular scopes on reads and searches: what ``authz.restrictions`` returns, applied.

A granular scope (``patient/Observation.rs?category=http://...|laboratory``) grants only the
resources its query matches. Its parameters must be token parameters of the type (``category``,
``code``, ``status``...), matched as a search would match them (``system|code``, ``code``,
``|code``, ``system|``, commas for any-of); a scope naming anything else reaches nothing. On a
search the scope's query is ANDed into the client's (several scopes: any of them); on a read the
stored resource must match, or the answer is the same 404 as for a missing record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from healthstack.core.outcome import FhirError
from healthstack.fhir import extract, searchdefs
from healthstack.fhir.query import PostFilter
from healthstack.security.authz import Restriction

Params = list[tuple[str, str]]


def supported(rtype: str, restriction: Restriction) -> bool:
    params = searchdefs.params_of(rtype)
    return all(name in params and params[name].type == "token" for name, _ in restriction)


def _token_matches(pairs: list[tuple[str | None, str]], wanted: str) -> bool:
    if "|" not in wanted:
        return any(code == wanted for _, code in pairs)
    system, _, code = wanted.partition("|")
    if not system:
        return any(s is None and c == code for s, c in pairs)
    if not code:
        return any(s == system for s, _ in pairs)
    return (system, code) in pairs


def matches(rtype: str, resource: dict[str, Any], restriction: Restriction) -> bool:
    if not supported(rtype, restriction):
        return False
    params = searchdefs.params_of(rtype)
    for name, value in restriction:
        pairs = extract.token_pairs(params[name].values(resource))
        if not any(_token_matches(pairs, alt) for alt in value.split(",")):
            return False
    return True


def permits(rtype: str, body: bytes | None, restrictions: Sequence[Restriction] | None) -> bool:
    """Whether a stored resource is within the caller's granular scopes (always when None)."""
    if restrictions is None:
        return True
    if body is None:
        return False  # a deleted version: nothing to match, nothing granted
    resource = orjson.loads(body)
    return any(matches(rtype, resource, r) for r in restrictions)


def narrow(rtype: str, params: Params, restrictions: Sequence[Restriction] | None
           ) -> tuple[Params, PostFilter | None]:  # fmt: skip
    """The search parameters with the scopes' query ANDed in, and a post-filter when several
    scopes cannot be written as one query (decided after decryption, like composites)."""
    if restrictions is None:
        return params, None
    usable = [r for r in restrictions if supported(rtype, r)]
    if not usable:
        raise FhirError(403, "forbidden", f"the access token's granular scopes for {rtype} use "
                        "parameters this server cannot enforce (token parameters only)")  # fmt: skip
    names = {name for r in usable for name, _ in r}
    if len(usable) == 1:
        return [*params, *usable[0]], None
    if len(names) == 1 and all(len(r) == 1 for r in usable):
        (name,) = names
        return [*params, (name, ",".join(r[0][1] for r in usable))], None

    def any_scope(resource: dict[str, Any]) -> bool:
        return any(matches(rtype, resource, r) for r in usable)

    return params, any_scope
