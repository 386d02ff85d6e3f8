"""The auditor's console under ``/console``: server-rendered HTML over the audit trail (issue 19).

Imports ``security``, ``service`` and ``core`` only (never ``fhir``), so the service can mount it.
See docs/console.md.
"""
