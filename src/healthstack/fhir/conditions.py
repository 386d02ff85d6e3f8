"""SQL conditions for any R4 search parameter, from its definition (type, code) alone.

One function per parameter type, each returning a condition on the resource alias it is given,
over the index tables of migration 0007 (plain values) or ``fhir_token`` (keyed digests, for what
:mod:`healthstack.fhir.phi` keeps identifying). Errors name the parameter, never its value.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from healthstack.core.crypto import Keyring, normalize
from healthstack.core.dates import interval
from healthstack.core.outcome import FhirError
from healthstack.fhir import extract, phi
from healthstack.fhir.query import TABLE, Query, bad
from healthstack.fhir.searchdefs import SearchParam

DATE_PREFIXES = ("eq", "ne", "lt", "gt", "le", "ge", "sa", "eb")
NUMBER_PREFIXES = ("eq", "ne", "lt", "gt", "le", "ge")
MODIFIERS = {
    "token": ("", "not", "missing", "of-type", "text"),
    "string": ("", "exact", "contains", "missing"),
    "reference": ("", "missing"),  # plus a resource type, e.g. subject:Patient
    "date": ("", "missing"),
    "number": ("", "missing"),
    "quantity": ("", "missing"),
    "uri": ("", "below", "above", "missing"),
    "composite": ("",),
}


@dataclass
class Context:
    """What a condition builder needs: the query (arguments), key ring, alias and type."""

    query: Query
    keyring: Keyring
    alias: str
    rtype: str

    def arg(self, value: Any) -> str:
        return self.query.arg(value)

    def rows(self, table: str, param: SearchParam, where: str) -> str:
        """``alias.id`` among the index rows of ``param`` that satisfy ``where`` (alias i)."""
        return (
            f"{self.alias}.id IN (SELECT i.id FROM {table} i WHERE i.resource_type = "
            f"{self.arg(self.rtype)} AND i.param = {self.arg(param.code)} AND ({where}))"
        )

    def digests(self, kinds_values: list[tuple[str, str]]) -> str:
        found = [d for kind, v in kinds_values for d in self.keyring.digests(kind, v)]
        return (
            f"{self.alias}.id IN (SELECT t.id FROM fhir_token t WHERE t.digest = "
            f"ANY({self.arg(found)}) AND t.resource_type = {self.arg(self.rtype)})"
        )


def condition(ctx: Context, param: SearchParam, name: str, modifier: str, value: str) -> str:
    """The SQL condition for ``name[:modifier]=value`` (comma-separated values are ORed)."""
    kind = param.type
    if kind == "reference" and modifier[:1].isupper():
        return _reference(ctx, param, name, value, modifier)
    if modifier not in MODIFIERS.get(kind, ("",)):
        raise bad(name, f"modifier :{modifier} is not supported for {kind} parameters")
    if modifier == "missing":
        return _missing(ctx, param, name, value)
    builder: Callable[..., str] = BUILDERS[kind]
    return builder(ctx, param, name, value, modifier)


def _missing(ctx: Context, param: SearchParam, name: str, value: str) -> str:
    if value not in ("true", "false"):
        raise bad(name, ":missing takes true or false")
    if _identifying(ctx.rtype, param):
        raise bad(name, ":missing is not supported for identifying values (kept as digests)")
    present = ctx.rows(TABLE[param.type], param, "true")
    return f"NOT ({present})" if value == "true" else present


def _identifying(rtype: str, param: SearchParam) -> bool:
    if param.type == "token":
        return not phi.token_is_plain(param.code)
    if param.type == "string":
        return not phi.string_is_plain(rtype)
    if param.type == "date":
        return not phi.date_is_plain(param.code)
    return False


def _alternatives(name: str, value: str) -> list[str]:
    values = value.split(",")
    if any(v == "" for v in values):
        raise bad(name, "empty value")
    return values


def _token(ctx: Context, param: SearchParam, name: str, value: str, modifier: str) -> str:
    alternatives = _alternatives(name, value)
    if modifier == "of-type":
        return _of_type(ctx, param, name, alternatives)
    if modifier == "text":
        return _text(ctx, param, name, alternatives)
    if not phi.token_is_plain(param.code):
        terms = [_token_term(param, name, alt) for alt in alternatives]
        found = ctx.digests(terms)
        return f"NOT ({found})" if modifier == "not" else found
    parts = []
    for alt in alternatives:
        system, bar, code = alt.rpartition("|")
        if not bar:
            parts.append(f"i.code = {ctx.arg(code)}")
        elif not code:
            parts.append(f"i.system = {ctx.arg(system)}")
        elif not system:
            parts.append(f"(i.code = {ctx.arg(code)} AND i.system IS NULL)")
        else:
            parts.append(f"(i.code = {ctx.arg(code)} AND i.system = {ctx.arg(system)})")
    found = ctx.rows("fhir_search_token", param, " OR ".join(parts))
    return f"NOT ({found})" if modifier == "not" else found


def _token_term(param: SearchParam, name: str, alt: str) -> tuple[str, str]:
    system, bar, code = alt.rpartition("|")
    if bar and not code:
        raise bad(name, "system| (any value in a system) is not supported for identifiers")
    return (f"ts:{param.code}", f"{system}|{code}") if bar else (f"t:{param.code}", code)


def _text(ctx: Context, param: SearchParam, name: str, alternatives: list[str]) -> str:
    """``code:text=heart rate``: every word is in the text or a display (whole words, any case).

    Comma-separated alternatives are ORed; the words of one alternative are ANDed.
    """
    parts = []
    for alt in alternatives:
        words = extract.text_words(alt)
        if not words:
            raise bad(name, ":text needs at least one word")
        parts.append(" AND ".join(ctx.digests([(f"tx:{param.code}", w)]) for w in words))
    return "(" + " OR ".join(f"({p})" for p in parts) + ")"


def _of_type(ctx: Context, param: SearchParam, name: str, alternatives: list[str]) -> str:
    # identifier:of-type=system|code|value: the identifier's type coding and its value.
    terms = []
    for alt in alternatives:
        parts = alt.split("|")
        if len(parts) != 3 or not all(parts):
            raise bad(name, ":of-type takes system|code|value")
        terms.append((f"ot:{param.code}", alt))
    return ctx.digests(terms)


def _string(ctx: Context, param: SearchParam, name: str, value: str, modifier: str) -> str:
    alternatives = _alternatives(name, value)
    if not phi.string_is_plain(ctx.rtype):
        if modifier == "contains":
            raise bad(name, ":contains is not supported for identifying text (kept as digests)")
        kind = "x" if modifier == "exact" else "s"
        terms = [(f"{kind}:{param.code}", alt if modifier == "exact" else
                  normalize(alt)[: extract.MAX_PREFIX]) for alt in alternatives]  # fmt: skip
        return ctx.digests(terms)
    parts = []
    for alt in alternatives:
        if modifier == "exact":
            parts.append(f"i.exact = {ctx.arg(alt)}")
        else:
            escaped = _like_escape(normalize(alt))
            pattern = f"%{escaped}%" if modifier == "contains" else f"{escaped}%"
            parts.append(f"i.normalized LIKE {ctx.arg(pattern)}")
    return ctx.rows("fhir_search_string", param, " OR ".join(parts))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def reference_value(name: str, alt: str, type_modifier: str | None) -> tuple[str | None, str]:
    """``(type or None, id)`` of a reference search value: ``Type/id``, ``id`` or a URL."""
    parts = alt.split("/_history/", 1)[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2][:1].isupper():
        rtype, rid = parts[-2], parts[-1]
        if type_modifier and rtype != type_modifier:
            raise bad(name, "the value's type differs from the :Type modifier")
        return rtype, rid
    if len(parts) == 1 and parts[0]:
        return type_modifier, parts[0]
    raise bad(name, "expected Type/id, an id or an absolute reference")


def _reference(ctx: Context, param: SearchParam, name: str, value: str,
               modifier: str = "") -> str:  # fmt: skip
    type_modifier = modifier or None
    if type_modifier and param.targets and type_modifier not in param.targets:
        raise bad(name, f"{type_modifier} is not a target of this parameter")
    parts = []
    for alt in _alternatives(name, value):
        parts.append(_reference_alternative(ctx, param, name, alt, type_modifier))
    return ctx.rows("fhir_search_reference", param, " OR ".join(parts))


def _reference_alternative(ctx: Context, param: SearchParam, name: str, alt: str,
                           type_modifier: str | None) -> str:  # fmt: skip
    """A canonical (profile, value set...) is stored as its URL; an absolute literal reference
    as Type/id: a URL value is tried both ways."""
    if param.targets == () and "/" not in alt:
        return f"i.target = {ctx.arg(alt)}"
    try:
        rtype, rid = reference_value(name, alt, type_modifier)
    except FhirError:
        if "://" in alt:
            return f"i.target = {ctx.arg(alt)}"
        raise
    condition = f"i.target = {ctx.arg(rid)}"
    if rtype is not None:
        condition += f" AND i.target_type = {ctx.arg(rtype)}"
    if "://" in alt:  # also the URL itself (each argument used: PostgreSQL must type them all)
        return f"(i.target = {ctx.arg(alt)} OR ({condition}))"
    return f"({condition})"


def split_prefix(name: str, raw: str, allowed: tuple[str, ...]) -> tuple[str, str]:
    if raw[:2].isalpha() and raw[:2].islower():
        if raw[:2] not in allowed:
            raise bad(name, f"prefix {raw[:2]!r} is not supported (use {', '.join(allowed)})")
        return raw[:2], raw[2:]
    return "eq", raw


def _date(ctx: Context, param: SearchParam, name: str, value: str, modifier: str) -> str:
    parts = []
    for alt in _alternatives(name, value):
        prefix, text = split_prefix(name, alt, DATE_PREFIXES)
        try:
            low, high = interval(text)
        except ValueError:
            raise bad(name, "expected a FHIR date or dateTime (with a time zone if it has a time)"
                      ) from None  # fmt: skip
        if not phi.date_is_plain(param.code):
            if prefix != "eq" or len(text) != 10:
                raise bad(name, "identifying dates are searchable by exact day only")
            return ctx.digests([(f"d:{param.code}", text)])
        template = {
            "eq": "(i.low >= {a} AND i.high <= {b})", "ne": "(i.low < {a} OR i.high > {b})",
            "lt": "i.low < {a}", "gt": "i.high > {b}", "le": "i.low < {b}",
            "ge": "i.high > {a}", "sa": "i.low >= {b}", "eb": "i.high <= {a}",
        }[prefix]  # fmt: skip
        parts.append(_fill(ctx, template, low, high))
    return ctx.rows("fhir_search_date", param, " OR ".join(parts))


def _fill(ctx: Context, template: str, low: Any, high: Any) -> str:
    """Only the bounds a comparison uses become arguments (PostgreSQL must type every one)."""
    a = ctx.arg(low) if "{a}" in template else ""
    b = ctx.arg(high) if "{b}" in template else ""
    return template.format(a=a, b=b)


def _number(ctx: Context, param: SearchParam, name: str, value: str, modifier: str) -> str:
    parts = []
    for alt in _alternatives(name, value):
        prefix, text = split_prefix(name, alt, NUMBER_PREFIXES)
        number, _, unit = text.partition("|")
        low, high = implicit_range(name, number)
        template = {
            "eq": "(i.value >= {a} AND i.value < {b})", "ne": "(i.value < {a} OR i.value >= {b})",
            "lt": "i.value < {a}", "gt": "i.value >= {b}", "le": "i.value < {b}",
            "ge": "i.value >= {a}",
        }[prefix]  # fmt: skip
        condition = _fill(ctx, template, low, high)
        if unit:
            system, bar, code = unit.rpartition("|")
            condition += f" AND i.code = {ctx.arg(code if bar else unit)}"
            if bar and system:
                condition += f" AND i.system = {ctx.arg(system)}"
        parts.append(f"({condition})")
    return ctx.rows("fhir_search_number", param, " OR ".join(parts))


def implicit_range(name: str, text: str) -> tuple[decimal.Decimal, decimal.Decimal]:
    """FHIR numbers carry their precision: ``5.4`` means [5.35, 5.45)."""
    try:
        number = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise bad(name, "expected a number") from None
    if not number.is_finite() or abs(number) >= decimal.Decimal("1e28"):
        raise bad(name, "expected a finite number below 1e28")
    exponent = number.as_tuple().exponent
    half = decimal.Decimal(5).scaleb(int(exponent) - 1) if isinstance(exponent, int) else 0
    return number - half, number + half


def _uri(ctx: Context, param: SearchParam, name: str, value: str, modifier: str) -> str:
    parts = []
    for alt in _alternatives(name, value):
        if modifier == "below":
            parts.append(f"i.code LIKE {ctx.arg(_like_escape(alt) + '%')}")
        elif modifier == "above":
            parts.append(f"{ctx.arg(alt)} LIKE replace(i.code, '%', '\\%') || '%'")
        else:
            parts.append(f"i.code = {ctx.arg(alt)}")
    return ctx.rows("fhir_search_token", param, " OR ".join(parts))


BUILDERS: dict[str, Callable[..., str]] = {
    "token": _token, "string": _string, "reference": _reference, "date": _date,
    "number": _number, "quantity": _number, "uri": _uri,
}  # fmt: skip
