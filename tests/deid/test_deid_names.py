"""Names in free text the structured record does not hold next to them: cue words, the names of
people and organisations the record refers to, and relatives' ages over 89."""

from __future__ import annotations

import datetime as dt

import orjson
from tests.deid.record import note, patient

from healthstack.deid import deidentify, reidentify_text

TODAY = dt.date(2026, 12, 4)


def test_capitalised_words_after_a_name_cue_are_scrubbed() -> None:
    text = (
        "Her daughter Lucinda Fairweather-Brown visited; seen by Anwen Tregarthen. "
        "Neighbour: Bartholomew Ashcombe called. The son is well."
    )
    out = deidentify([note(text)], None, TODAY)
    sent = out.resources[0]["valueString"]
    for name in ("Lucinda", "Fairweather-Brown", "Anwen", "Tregarthen", "Bartholomew", "Ashcombe"):
        assert name not in sent
    assert sent.startswith("Her daughter [[NAME-")  # the cue stays: the model knows who it was
    assert sent.endswith("The son is well.")
    assert "Lucinda Fairweather-Brown" in reidentify_text(sent, out.reid)


def test_names_of_referenced_people_and_organisations_are_scrubbed_everywhere() -> None:
    practitioner = {
        "resourceType": "Practitioner",
        "id": "pr-1",
        "name": [{"family": "Ravensworth", "given": ["Isolde"]}],
    }
    relative = {
        "resourceType": "RelatedPerson",
        "id": "rp-1",
        "name": [{"family": "Pemberton", "given": ["Cosmo"]}],
    }
    clinic = {"resourceType": "Organization", "id": "org-9", "name": "Harrowgate Clinic"}
    text = "Isolde reviewed; Cosmo Pemberton drove; transferred from Harrowgate Clinic; Ravensworth agrees."
    out = deidentify(
        [patient(), note(text)], None, TODAY, names_from=[practitioner, relative, clinic]
    )
    sent = orjson.dumps(out.resources).decode()
    for value in ("Isolde", "Ravensworth", "Cosmo", "Pemberton", "Harrowgate", "pr-1", "rp-1"):
        assert value not in sent
    assert len(out.resources) == 2  # the referenced resources lend their names, never sent


def test_a_relatives_age_over_89_is_aggregated() -> None:
    def relative(born: str) -> dict[str, object]:
        person = {
            "resourceType": "RelatedPerson",
            "birthDate": born,
            "patient": {"reference": "Patient/p"},
        }
        return deidentify([person], None, TODAY).resources[0]

    assert relative("1931-05-02")["ageGroup"] == "90 or older"
    assert "birthDate" not in relative("1931-05-02")
    assert relative("1960-05-02")["birthDate"] == "1960"
    shifted = deidentify(
        [{"resourceType": "RelatedPerson", "birthDate": "1931-05-02"}], 40, TODAY
    ).resources[0]
    assert shifted == {"resourceType": "RelatedPerson", "ageGroup": "90 or older"}
