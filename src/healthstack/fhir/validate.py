"""FHIR validation entry point: the generic validator in ``structure.py``, driven by the R4
definitions in ``definitions/``. Kept so that ``from healthstack.fhir.validate import validate``,
the shared patterns and the stored-type sets keep working."""

from __future__ import annotations

from healthstack.fhir import definitions
from healthstack.fhir.primitives import ID_RE, MAX_DECIMAL, REFERENCE_RE
from healthstack.fhir.structure import validate

__all__ = ["ID_RE", "MAX_DECIMAL", "REFERENCE_RE", "REFUSED", "RESOURCE_TYPES", "validate"]

# Every R4 type the REST API stores, and the ones it refuses with the reason it gives.
RESOURCE_TYPES: frozenset[str] = definitions.RESOURCE_TYPES
REFUSED: dict[str, str] = definitions.REFUSED
