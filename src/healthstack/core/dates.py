"""FHIR date/dateTime values as half-open UTC intervals ``[start, end)`` (their implicit precision)."""

from __future__ import annotations

import datetime as dt
import functools

UTC = dt.UTC


def _add_months(day: dt.date, months: int) -> dt.date:
    total = day.year * 12 + day.month - 1 + months
    return dt.date(total // 12, total % 12 + 1, 1)


# Python's datetime (and so every index and search bound) spans years 1-9999; an interval must
# fit with its end and in UTC, so 0001-01-01T00:00:00+14:00 and 9999-12-31 are outside.
MIN_YEAR, MAX_YEAR = 2, 9998
OUT_OF_RANGE = f"dates must fall in the years {MIN_YEAR:04d}-{MAX_YEAR:04d}"


def interval(text: str) -> tuple[dt.datetime, dt.datetime]:
    """``2021`` -> the year, ``2021-03`` -> the month, a day, or an instant (end = start + 1 µs).

    Raises ValueError for anything not a FHIR date/dateTime or outside the supported years
    (callers turn it into a 400 or a 422).
    """
    try:
        start, end = _interval(text)
    except OverflowError:
        raise ValueError(OUT_OF_RANGE) from None
    if not MIN_YEAR <= start.year <= MAX_YEAR or end.year > MAX_YEAR + 1:
        raise ValueError(OUT_OF_RANGE)
    return start, end


def _interval(text: str) -> tuple[dt.datetime, dt.datetime]:
    if len(text) == 4 and text.isascii() and text.isdigit():
        start = dt.date(int(text), 1, 1)
        return _midnight(start), _midnight(dt.date(start.year + 1, 1, 1))
    if len(text) == 7 and text[4] == "-":
        start = dt.date(int(text[:4]), int(text[5:7]), 1)
        return _midnight(start), _midnight(_add_months(start, 1))
    if len(text) == 10:
        day = dt.date.fromisoformat(text)
        return _midnight(day), _midnight(day + dt.timedelta(days=1))
    if "T" not in text:
        raise ValueError("not a FHIR date")
    leap = text[16:19] == ":60"  # FHIR allows leap seconds; datetime cannot hold second 60
    if leap:
        text = f"{text[:16]}:59{text[19:]}"
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("a dateTime with a time needs a time zone")
    # A leap second is ordered just after :59 of its minute: the instant the next second starts.
    moment = moment.astimezone(UTC) + (dt.timedelta(seconds=1) if leap else dt.timedelta())
    # Seconds precision searches (the common case) cover the whole second.
    width = dt.timedelta(seconds=1) if "." not in text else dt.timedelta(microseconds=1)
    return moment, moment + width


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def instant_text(moment: dt.datetime) -> str:
    """FHIR ``instant`` with millisecond precision (truncated), always UTC ``Z``."""
    # isoformat, not strftime: twice per stored resource, and strftime showed in the ingest profile.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def http_date(moment: dt.datetime) -> str:
    # Last-Modified on every read: cached per second (strftime showed in the read profile).
    return _http_date(int(moment.replace(microsecond=0).timestamp()))


@functools.lru_cache(maxsize=1024)
def _http_date(epoch_seconds: int) -> str:
    return dt.datetime.fromtimestamp(epoch_seconds, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
