"""Building blocks every layer may use (they import no healthstack layer above them): PHI key
ring and AES-GCM sealing (``crypto``), the OperationOutcome error shape (``outcome``) and FHIR
date intervals (``dates``). ``service`` and ``security`` import these, never ``healthstack.fhir``."""
