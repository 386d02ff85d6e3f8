"""Search: strict parameter parsing, SQL over plaintext columns and blind-index digests, keyset pages.

Repeated parameters are ANDed, comma-separated values ORed (FHIR). Anything unknown, any modifier
and any malformed value is a 400 (the strict handling FHIR describes), never silently ignored.
Some conditions cannot be decided in SQL over ciphertext (birthdate ranges): SQL narrows by a
blind index of the birth year and :attr:`Query.post_filters` decide exactly after decryption.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from healthstack.core.crypto import Keyring, normalize
from healthstack.core.dates import interval
from healthstack.core.outcome import FhirError
from healthstack.fhir import (
    chains,
    composite,
    conditions,
    cursors,
    extract,
    searchdefs,
    shaping,
    sorting,
)
from healthstack.fhir.query import (
    MAX_COUNT,
    Confinement,
    Interval,
    Query,
    bad,
    interval_matches,
    parse_prefixed,
    range_condition,
)
from healthstack.numbers import ascii_int

MIN_BIRTH_YEAR = 1800
GENDERS = frozenset({"male", "female", "other", "unknown"})
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
COMMON = ("_id", "_lastUpdated", "_count", "_sort")
# Parameters answered from fhir_resource's own columns (fast paths kept from before the generic
# engine); every other parameter of every type comes from the R4 definitions (searchdefs).
PARAMS: dict[str, tuple[str, ...]] = {
    rtype: (*COMMON, *sorted(names)) for rtype, names in extract.NATIVE.items()
}
SORTS = {"Patient": ("_id",), "Observation": ("_id", "date", "-date")}


def native_params(rtype: str) -> tuple[str, ...]:
    return PARAMS.get(rtype, COMMON)


class Parser:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def parse(
        self,
        rtype: str,
        params: list[tuple[str, str]],
        confine: Confinement,
        lenient: bool = False,
    ) -> Query:
        """Strict by default (an unknown parameter is a 400); with ``Prefer: handling=lenient``
        unknown parameters are left out and named in ``Query.ignored`` (never their values).
        ``confine`` gives the caller's confinement of each type (``Caller.patient_for``)."""
        kept = [(n, v) for n, v in params if not lenient or self.known(rtype, n)]
        query = Query(rtype, kept, confined_to=confine(rtype), confine=confine)
        query.ignored = [n[:64] for n, _ in params if lenient and not self.known(rtype, n)]
        for name, value in kept:
            if value == "":
                raise bad(name, "empty value")
            if name.partition(":")[0] in shaping.RESULT_PARAMS:
                query.shape.add(rtype, name, value)
                continue
            self.condition(query, "r", rtype, name, value)
        return query

    @staticmethod
    def known(rtype: str, name: str) -> bool:
        base = name.partition(":")[0]
        return (
            base in native_params(rtype)
            or base in shaping.RESULT_PARAMS
            or base in ("_has", "_cursor")
            or "." in name
            or base in searchdefs.params_of(rtype)
        )

    def condition(self, query: Query, alias: str, rtype: str, name: str, value: str) -> None:
        """Add ``name=value`` on ``alias`` (a ``rtype`` row): the columns Patient and Observation
        keep for their own parameters, else the parameter's definition (``conditions``)."""
        base, _, modifier = name.partition(":")
        if base in ("_id", "_lastUpdated") and alias != "r":
            query.where.append(chains.column(query, alias, name, value))
            return
        if base in native_params(rtype) and alias == "r" and not modifier:
            getattr(self, "p_" + base.lstrip("_"))(query, name, value)
            return
        if modifier and base in COMMON:  # columns of fhir_resource: no index rows to modify
            raise bad(name, "modifiers are not supported on this parameter")
        # With a modifier, a native parameter is answered from the generic index, which holds
        # every parameter of every type (extract.extracted_params).
        if base == "_has":
            query.where.append(chains.has(self, query, alias, rtype, name, value))
            return
        if "." in name:  # subject.name, subject:Patient.name
            query.where.append(chains.chain(self, query, alias, rtype, name, value))
            return
        param = searchdefs.params_of(rtype).get(base)
        if param is None or base in ("_count", "_sort"):
            raise FhirError(
                400, "not-supported", f"unknown search parameter {name[:64]!r} for {rtype}"
            )
        if param.type == "composite":
            if alias != "r" or modifier:
                raise bad(name, "composites are supported at the top level, without modifiers")
            composite.add(self, query, rtype, param, name, value)
            return
        ctx = conditions.Context(query, self.keyring, alias, rtype)
        query.where.append(conditions.condition(ctx, param, name, modifier, value))

    def _tokens(self, query: Query, kinds_values: list[tuple[str, str]], rtype: str) -> None:
        digests = [d for kind, v in kinds_values for d in self.keyring.digests(kind, v)]
        query.where.append(
            f"r.id IN (SELECT t.id FROM fhir_token t WHERE t.digest = ANY({query.arg(digests)}) "
            f"AND t.resource_type = '{rtype}')"
        )

    # -- common ---------------------------------------------------------------------------
    def p_id(self, query: Query, name: str, value: str) -> None:
        ids = value.split(",")
        if not all(_ID.match(i) for i in ids):
            raise bad(name, "not a FHIR id")
        query.where.append(f"r.id = ANY({query.arg(ids)})")

    def p_lastUpdated(self, query: Query, name: str, value: str) -> None:
        prefix, span = parse_prefixed(name, value)
        query.where.append(range_condition(query, prefix, span, "r.last_updated", "r.last_updated"))

    def p_count(self, query: Query, name: str, value: str) -> None:
        count = ascii_int(value)
        if count is None or count < 1:
            raise bad(name, "must be a positive integer")
        query.count = min(count, MAX_COUNT)

    def p_sort(self, query: Query, name: str, value: str) -> None:
        if value in SORTS.get(query.resource_type, ("_id",)):
            query.sort = value  # the indexed fast paths
            return
        query.sort = "generic"
        query.sort_keys = sorting.parse(query, value)

    # -- Patient ----------------------------------------------------------------------------
    def p_identifier(self, query: Query, name: str, value: str) -> None:
        terms = []
        for alt in value.split(","):
            system, bar, ident = alt.rpartition("|")
            if bar and not ident.strip():
                raise bad(name, "system| without a value is not supported")
            kind = "identifier.sv" if bar else "identifier.v"
            terms.append((kind, f"{system}|{ident.strip()}" if bar else ident.strip()))
        self._tokens(query, terms, "Patient")

    def _name(self, query: Query, name: str, value: str, kind: str) -> None:
        terms = [(kind, normalize(alt)) for alt in value.split(",")]
        if not all(v for _, v in terms):
            raise bad(name, "empty name")
        self._tokens(query, terms, "Patient")

    def p_family(self, query: Query, name: str, value: str) -> None:
        self._name(query, name, value, "family")

    def p_given(self, query: Query, name: str, value: str) -> None:
        self._name(query, name, value, "given")

    def p_name(self, query: Query, name: str, value: str) -> None:
        self._name(query, name, value, "name")

    def p_gender(self, query: Query, name: str, value: str) -> None:
        values = value.split(",")
        if not set(values) <= GENDERS:
            raise bad(name, f"must be one of {', '.join(sorted(GENDERS))}")
        query.where.append(f"r.gender = ANY({query.arg(values)})")

    def p_birthdate(self, query: Query, name: str, value: str) -> None:
        prefix, span = parse_prefixed(name, value)
        if prefix == "eq" and span[1] - span[0] == dt.timedelta(days=1):
            self._tokens(query, [("birthdate", value.removeprefix("eq"))], "Patient")
            return
        years = candidate_years(prefix, span)
        self._tokens(query, [("birthyear", str(y)) for y in years], "Patient")
        query.post_filters.append(lambda r: _birth_matches(r, prefix, span))

    # -- Observation --------------------------------------------------------------------------
    def p_patient(self, query: Query, name: str, value: str) -> None:
        ids = [v.removeprefix("Patient/") for v in value.split(",")]
        if not all(_ID.match(i) for i in ids):
            raise bad(name, "expected a Patient id or Patient/id")
        query.where.append(f"r.patient_id = ANY({query.arg(ids)})")

    def p_subject(self, query: Query, name: str, value: str) -> None:
        if not all(v.startswith("Patient/") for v in value.split(",")):
            raise bad(name, "only Patient/id subjects are searchable")
        self.p_patient(query, name, value)

    def p_code(self, query: Query, name: str, value: str) -> None:
        query.where.append(f"r.codes && {query.arg(token_values(name, value))}::text[]")

    def p_category(self, query: Query, name: str, value: str) -> None:
        query.where.append(f"r.categories && {query.arg(token_values(name, value))}::text[]")

    def p_date(self, query: Query, name: str, value: str) -> None:
        prefix, span = parse_prefixed(name, value)
        end = "COALESCE(r.effective_end, 'infinity')"
        query.where.append(
            f"r.effective_start IS NOT NULL AND "
            f"{range_condition(query, prefix, span, 'r.effective_start', end)}"
        )


def token_values(name: str, value: str) -> list[str]:
    out = []
    for alt in value.split(","):
        system, bar, code = alt.rpartition("|")
        if not code:
            raise bad(name, "expected code, system|code or |code")
        out.append(f"{system}|{code}" if bar else code)
    return out


def candidate_years(prefix: str, span: Interval) -> range:
    """Birth years a match can have; each gets its blind-index digest (years are few)."""
    first, last = MIN_BIRTH_YEAR, dt.datetime.now(dt.UTC).year + 1
    low_year, high_year = span[0].year, (span[1] - dt.timedelta(microseconds=1)).year
    bounds = {
        "eq": (low_year, high_year),
        "lt": (first, low_year),
        "le": (first, high_year),
        "gt": (low_year, last),
        "ge": (low_year, last),
    }[prefix]
    return range(max(first, bounds[0]), min(last, bounds[1]) + 1)


def _birth_matches(resource: dict[str, Any], prefix: str, span: Interval) -> bool:
    birth = resource.get("birthDate")
    return isinstance(birth, str) and interval_matches(prefix, span, interval(birth))


# -- SQL and keyset paging -----------------------------------------------------------------------
_ORDER = {
    "_id": "r.id ASC",
    "date": "r.effective_start ASC NULLS FIRST, r.id ASC",
    "-date": "r.effective_start DESC NULLS LAST, r.id DESC",
}


def keyset(query: Query, after: list[Any] | None) -> str | None:
    """The condition for rows after the last one served (sort key, id): stable under inserts."""
    if after is None:
        return None
    if query.sort_keys:
        return sorting.after(query, query.sort_keys, after)
    moment, rid = after
    if query.sort == "_id":
        return f"r.id > {query.arg(rid)}"
    when = dt.datetime.fromisoformat(moment) if moment else None
    start = "r.effective_start"
    if query.sort == "date":
        if when is None:
            return f"(({start} IS NULL AND r.id > {query.arg(rid)}) OR {start} IS NOT NULL)"
        return f"({start}, r.id) > ({query.arg(when)}, {query.arg(rid)})"
    if when is None:
        return f"({start} IS NULL AND r.id < {query.arg(rid)})"
    return f"(({start}, r.id) < ({query.arg(when)}, {query.arg(rid)}) OR {start} IS NULL)"


def build_sql(query: Query, patient: str | None, after: list[Any] | None, limit: int) -> str:
    where = [f"r.resource_type = {query.arg(query.resource_type)}", "NOT r.deleted", *query.where]
    if patient is not None:
        where.append(confinement(query, "r", patient))
    position = keyset(query, after)
    if position:
        where.append(position)
    ordering = sorting.order(query.sort_keys) if query.sort_keys else _ORDER[query.sort]
    return (
        f"SELECT r.id, r.version, r.deleted, r.last_updated, r.key_id, r.body, "
        f"r.effective_start{sorting.select(query.sort_keys)} FROM fhir_resource r "
        f"WHERE {' AND '.join(where)} ORDER BY {ordering} LIMIT {query.arg(limit)}"
    )


def count_sql(query: Query, patient: str | None) -> str:
    """How many rows the search matches in all (``_total=accurate``)."""
    where = [f"r.resource_type = {query.arg(query.resource_type)}", "NOT r.deleted", *query.where]
    if patient is not None:
        where.append(confinement(query, "r", patient))
    return f"SELECT count(*) FROM fhir_resource r WHERE {' AND '.join(where)}"


def confinement(query: Query, alias: str, patient: str) -> str:
    """Rows in ``patient``'s compartment: Patient and Observation by their indexed column, every
    other type by the compartment list the CompartmentDefinition gave it at write time."""
    if query.resource_type in extract.NATIVE and alias == "r":
        return f"{alias}.patient_id = {query.arg(patient)}"
    return f"{alias}.compartment @> ARRAY[{query.arg(patient)}]::text[]"


def sort_key(query: Query, row: Any) -> list[Any]:
    if query.sort_keys:
        return sorting.position(query.sort_keys, row)
    moment = row["effective_start"]
    return [moment.isoformat() if (moment and query.sort != "_id") else None, row["id"]]


# -- opaque cursors (cursors.py): the query and position travel sealed, so URLs carry no PHI ------
def seal(keyring: Keyring, query: Query, after: list[Any] | None) -> str:
    return cursors.seal(keyring, "search", query.resource_type, {"q": query.params, "a": after})


def unseal(
    keyring: Keyring, rtype: str, token: str
) -> tuple[list[tuple[str, str]], list[Any] | None]:
    state = cursors.open_(keyring, "search", rtype, token)
    return [(k, v) for k, v in state["q"]], state["a"]
