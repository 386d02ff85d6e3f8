"""Compliance evidence: which mechanism meets which HIPAA 164.312 safeguard, and proof of it."""
