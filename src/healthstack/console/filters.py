"""Trail search filters from a query string: validated, then SQL with bound parameters only.

Every value is bounded (length, no NUL, a known set or shape) and passed as a parameter, never
spliced into SQL. A malformed filter is a :class:`ConsoleError` 400 naming the field.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import QueryParams

from healthstack.console.session import ConsoleError

MAX_VALUE = 256
PAGE = 50
OUTCOMES = ("success", "denied", "unauthenticated", "failed", "error")
FIELDS = ("who", "patient", "type", "interaction", "outcome", "from", "to", "break_glass",
          "cursor")  # fmt: skip
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_INTERACTION = re.compile(r"^[a-z][a-z$-]{0,63}$")
# The trail starts with the service; a year outside this is a typo, not a search.
EARLIEST, LATEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


@dataclass
class Filters:
    values: dict[str, str] = field(default_factory=dict)  # as typed (validated), for the form
    where: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"


def patient_id(value: str, name: str = "patient") -> str:
    if not _UUID.fullmatch(value):
        raise ConsoleError(400, f"{name}: expected a patient id (a server-assigned UUID)")
    return value


def patient_clause(filters: Filters, pid: str) -> str:
    """Records about one patient: the Patient itself (read, or searched by ``_id``), a search
    naming it by id, or a read of a resource in its compartment (the record's ``query.patients``)."""
    ids, one = filters.arg([pid, f"Patient/{pid}"]), filters.arg(pid)
    return (f"((resource_type = 'Patient' AND resource_id = {one}) OR "
            f"(content::jsonb -> 'query' -> 'patient') ?| {ids}::text[] OR "
            f"(content::jsonb -> 'query' -> 'subject') ?| {ids}::text[] OR "
            f"(content::jsonb -> 'query' -> 'patients') ? {one} OR "
            f"(resource_type = 'Patient' AND (content::jsonb -> 'query' -> '_id') ? {one}))")  # fmt: skip


def _time(value: str, name: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConsoleError(400, f"{name}: expected a date (2026-12-04) or a date and time "
                           "(2026-12-04T10:00)") from None  # fmt: skip
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if not EARLIEST <= moment < LATEST:
        raise ConsoleError(400, f"{name}: must be between 2000 and 2099")
    return moment


def _simple(filters: Filters, name: str, value: str) -> None:
    if name == "who":
        filters.where.append(
            f"(subject = {filters.arg(value)} OR client_id = {filters.arg(value)})"
        )
    elif name == "patient":
        filters.where.append(patient_clause(filters, patient_id(value)))
    elif name == "type":
        if not _TYPE.fullmatch(value):
            raise ConsoleError(400, "type: expected a resource type such as Patient")
        filters.where.append(f"resource_type = {filters.arg(value)}")
    elif name == "interaction":
        if not _INTERACTION.fullmatch(value):
            raise ConsoleError(400, "interaction: expected a word such as read or search")
        filters.where.append(f"interaction = {filters.arg(value)}")
    elif name == "outcome":
        if value not in OUTCOMES:
            raise ConsoleError(400, f"outcome: expected one of {', '.join(OUTCOMES)}")
        filters.where.append(f"outcome = {filters.arg(value)}")
    elif name == "break_glass":
        if value not in ("yes", "no"):
            raise ConsoleError(400, "break_glass: expected yes or no")
        filters.where.append("break_glass" if value == "yes" else "NOT break_glass")


_RANGE: dict[str, Callable[[Filters, dt.datetime], str]] = {
    "from": lambda f, t: f"recorded_at >= {f.arg(t)}",
    "to": lambda f, t: f"recorded_at < {f.arg(t)}",
}


def parse(params: QueryParams) -> Filters:
    filters = Filters()
    seen: set[str] = set()
    for name, value in params.multi_items():
        if name not in FIELDS:
            raise ConsoleError(400, f"unknown filter {name[:32]!r}")
        if name in seen:
            raise ConsoleError(400, f"{name}: given more than once")
        seen.add(name)
        if "\x00" in value or len(value) > MAX_VALUE:
            raise ConsoleError(400, f"{name}: at most {MAX_VALUE} printable characters")
        value = value.strip()
        if not value:
            continue
        filters.values[name] = value
        if name in _RANGE:
            filters.where.append(_RANGE[name](filters, _time(value, name)))
        elif name == "cursor":
            filters.where.append(_cursor_clause(filters, value))
        else:
            _simple(filters, name, value)
    if {"from", "to"} <= filters.values.keys() and _time(filters.values["from"], "from") >= _time(
        filters.values["to"], "to"
    ):
        raise ConsoleError(400, "from: must be before to")
    return filters


def cursor_of(recorded_at: dt.datetime, chain_id: int, seq: int) -> str:
    raw = f"{recorded_at.isoformat()}|{chain_id}|{seq}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _cursor_clause(filters: Filters, value: str) -> str:
    try:
        when, chain, seq = base64.urlsafe_b64decode(value).decode().split("|")
        key = (dt.datetime.fromisoformat(when), int(chain), int(seq))
    except (ValueError, UnicodeDecodeError):
        raise ConsoleError(400, "cursor: malformed; start the search again") from None
    if not (0 <= key[1] < 2**15 and 0 <= key[2] < 2**63):
        raise ConsoleError(400, "cursor: malformed; start the search again")
    return (f"(recorded_at, chain_id, seq) < ({filters.arg(key[0])}::timestamptz, "
            f"{filters.arg(key[1])}::smallint, {filters.arg(key[2])}::bigint)")  # fmt: skip
