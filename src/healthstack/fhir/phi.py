"""Which search values are kept as keyed digests and which in plain text: one reviewed table.

The whole resource body is always encrypted. What search needs is kept beside it, and this module
decides, per parameter, whether that copy may be plain. The rule: anything that can identify a
person is a keyed HMAC digest (``fhir_token``), searchable by equality only; a value is plain
only where range or substring search needs order and the value identifies nobody on its own.

| kept as a digest | why |
|---|---|
| every ``string`` parameter of a type that describes a person or their care | names, addresses, free text |
| tokens named in ``IDENTIFYING_TOKENS`` (identifier, telecom, email, phone, ...) | MRNs, SSNs, numbers |
| dates named in ``IDENTIFYING_DATES`` (birth and death dates) | a birth date singles people out |

| kept plain | why it is allowed |
|---|---|
| other tokens (codes, statuses, categories, booleans) | terminology, shared by many patients |
| references (``Type/id``) | server-assigned opaque ids |
| clinical dates, numbers, quantities | needed for ranges; with no name or id beside them |
| uris | canonical URLs of definitions |
| strings of definitional types (ValueSet, Questionnaire, Organization, Location, ...) | no person described |

docs/fhir-search.md lists it (generated); ``tests/fhir/test_fhir_generic.py`` loads a US Core-shaped
record of twelve types and scans every table for the identifying values it wrote, and
``tests/fhir/test_fhir_keys.py`` scans a ``pg_dump`` for Patient and Observation PHI, and
``tests/fhir/test_fhir_dump_every_type.py`` one of every stored type.
"""

from __future__ import annotations

from healthstack.fhir import searchdefs

IDENTIFYING_TOKENS = frozenset({
    "identifier", "telecom", "email", "phone", "patient-identifier", "subject-identifier",
    "accession", "ssn", "value-string",
})  # fmt: skip
IDENTIFYING_DATES = frozenset({"birthdate", "death-date", "deceased"})
# Types whose strings describe a person even though no patient compartment lists them.
PERSON_TYPES = frozenset({"Patient", "Practitioner", "PractitionerRole", "RelatedPerson",
                          "Person", "Group"})  # fmt: skip


def string_is_plain(rtype: str) -> bool:
    """Plain (substring-searchable) strings only for types that describe no person."""
    return rtype not in PERSON_TYPES and not searchdefs.compartment_params(rtype)


def token_is_plain(code: str) -> bool:
    return code not in IDENTIFYING_TOKENS


def date_is_plain(code: str) -> bool:
    return code not in IDENTIFYING_DATES
