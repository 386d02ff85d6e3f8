"""FHIR validation entry point: the generic validator in ``structure.py``, driven by the R4
definitions in ``definitions/``. Kept so that ``from healthstack.fhir.validate import validate``
(and the shared patterns) keep working."""

from __future__ import annotations

from healthstack.fhir.primitives import ID_RE, MAX_DECIMAL, REFERENCE_RE
from healthstack.fhir.structure import validate

__all__ = ["ID_RE", "MAX_DECIMAL", "REFERENCE_RE", "validate"]
