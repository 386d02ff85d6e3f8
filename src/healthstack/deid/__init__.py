"""De-identification (HIPAA Safe Harbor) of FHIR JSON: pure functions, no I/O (docs/ai.md)."""

from healthstack.deid.placeholders import UnknownPlaceholder, reidentify_text
from healthstack.deid.safe_harbor import Deidentified, deidentify

__all__ = ["Deidentified", "UnknownPlaceholder", "deidentify", "reidentify_text"]
