"""One cursor sealer for searches, type histories and $everything: sealed, bound, expiring."""

from __future__ import annotations

import os

import pytest

from healthstack.core.crypto import Keyring
from healthstack.core.outcome import FhirError
from healthstack.fhir import cursors

KEYRING = Keyring(os.urandom(32))


def _refused(*args: str) -> str:
    with pytest.raises(FhirError) as error:
        cursors.open_(KEYRING, *args)
    assert error.value.status == 400
    return str(error.value)


def test_a_cursor_opens_only_for_its_kind_and_owner() -> None:
    token = cursors.seal(KEYRING, "history-type", "Encounter", [3, "x"])
    assert cursors.open_(KEYRING, "history-type", "Encounter", token) == [3, "x"]
    assert "another request" in _refused("search", "Encounter", token)
    assert "another request" in _refused("history-type", "Condition", token)
    assert "Encounter" not in token  # nothing readable in the URL


def test_forged_foreign_and_stale_cursors_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    token = cursors.seal(KEYRING, "search", "Patient", {"q": [["name", "Smith"]]})
    assert "invalid" in _refused("search", "Patient", token[:-4] + "AAAA")
    other = cursors.seal(Keyring(os.urandom(32)), "search", "Patient", {})
    assert "invalid" in _refused("search", "Patient", other)
    assert "invalid" in _refused("search", "Patient", "%%%")
    monkeypatch.setattr(cursors, "TTL", -cursors.TTL)
    stale = cursors.seal(KEYRING, "everything", "p1", [])
    assert "expired" in _refused("everything", "p1", stale)
