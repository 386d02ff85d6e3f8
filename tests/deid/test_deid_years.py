"""Years-only dates, Safe Harbor's letter and the default (AI_DATE_MODE=year): no month or day
of any date survives, in structured elements or in free text; ages over 89 aggregate."""

from __future__ import annotations

import datetime as dt
import re

import orjson
import pytest
from tests.deid.record import DATES, IDENTIFIERS, note, record

from healthstack.ai.settings import AiSettings
from healthstack.deid import deidentify, reidentify_text
from healthstack.deid.text import shift_date, unshift_dates
from healthstack.errors import HealthstackError

TODAY = dt.date(2026, 12, 4)
# Anything that still looks like a month or a day next to a year.
MONTH_OR_DAY = re.compile(
    r"\b(?:19|20)\d\d-\d|\d{1,2}/\d{1,2}|\d{1,2}/\d{4}|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|"
    r"nov|dec)[a-z]*\.?,?\s+\d",
    re.IGNORECASE,
)
NOTE = (
    "Seen 2024-03-01T09:30:00Z and 2024-03-11 10:15, admitted 03/01/2024 (3/1/24), "
    "follow-up March 2024 and 2024-05, letter of 3rd March, born June 15, review 04/2025."
)


def test_years_mode_keeps_no_month_or_day_anywhere() -> None:
    out = deidentify([*record(), note(NOTE)], None, TODAY)
    sent = orjson.dumps(out.resources).decode()
    assert MONTH_OR_DAY.search(sent) is None, MONTH_OR_DAY.search(sent)
    assert [v for v in IDENTIFIERS if v.lower() in sent.lower()] == []
    assert out.shift_days is None
    patient, encounter = out.resources[0], out.resources[1]
    assert patient["birthDate"] == DATES["birth"][:4]
    assert encounter["period"] == {"start": "2024", "end": "2024"}
    text = out.resources[-1]["valueString"]
    assert text.startswith("Seen 2024 and 2024, admitted 2024 (2024), follow-up 2024 and 2024")
    assert "[date]" in text  # "3rd March": no year to keep


def test_years_mode_structured_precisions() -> None:
    assert shift_date("2024-03-01T10:00:00.123+02:00", None) == "2024"
    assert shift_date("2024-03", None) == "2024"
    assert shift_date("1950", None) == "1950"
    assert shift_date("free text", None) is None


def test_years_mode_aggregates_birth_years_that_could_mean_over_89() -> None:
    def born(year: str) -> dict[str, object]:
        return deidentify([{"resourceType": "Patient", "birthDate": year}], None, TODAY).resources[
            0
        ]

    # 1936: 90 on 2026-12-04 at the latest, possibly 89; the year alone could say 90, so it goes.
    assert born("1936-12-31") == {"resourceType": "Patient", "ageGroup": "90 or older"}
    assert born("1936") == {"resourceType": "Patient", "ageGroup": "90 or older"}
    assert born("1937-01-01") == {"resourceType": "Patient", "birthDate": "1937"}


def test_years_mode_answer_is_reidentified_and_left_undated() -> None:
    out = deidentify(record(), None, TODAY)
    name = next(p for p, v in out.reid.items() if v == "Zebediah Quillfeather")
    answer = f"{name} was admitted in 2024."
    restored = unshift_dates(reidentify_text(answer, out.reid), out.shift_days)
    assert restored == "Zebediah Quillfeather was admitted in 2024."


def test_date_mode_setting() -> None:
    assert AiSettings.from_env({}).date_mode == "year"
    assert AiSettings.from_env({"AI_DATE_MODE": "shift"}).date_mode == "shift"
    with pytest.raises(HealthstackError, match="AI_DATE_MODE must be one of: year, shift") as err:
        AiSettings.from_env({"AI_DATE_MODE": "monthly"})
    assert "monthly" not in str(err.value)


def test_other_date_shapes_in_text() -> None:
    text = "Seen 2024/03/01, then 01.03.2024 and 11-03-2024; the 1st of March too."
    years = deidentify([note(text)], None, TODAY).resources[0]["valueString"]
    assert years == "Seen 2024, then 2024 and 2024; the [date] too."
    shifted = deidentify([note(text)], 3, TODAY).resources[0]["valueString"]
    assert shifted == "Seen 2024-03-04, then [date] and [date]; the [date] too."
