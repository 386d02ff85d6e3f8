"""healthstack: a HIPAA-grade FHIR R4 clinical-data service and the tooling that deploys and verifies it."""

__version__ = "0.1.0"
