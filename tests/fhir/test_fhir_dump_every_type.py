"""A pg_dump holds no identifying value of any resource type (issue 13).

One instance of every type the server stores, each carrying values only it has (a narrative, an
identifier where the type has one, a person's name where it has a HumanName), written through the
API; then the whole database is dumped with pg_dump and searched for every one of those values.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import Database, Service
from tests.fhir.conftest import client_for
from tests.fhir.minimal import minimal

from healthstack.fhir import ops
from healthstack.service.embedded_pg import bin_dir

PERSON_NAMED = ("Patient", "Practitioner", "RelatedPerson", "Person")


def _marked(rtype: str, n: int) -> tuple[dict[str, Any], list[str]]:
    """The type's minimal instance with values unique to it (what must never be in clear)."""
    markers = [f"Narr{n:03d}Qz", f"Ident{n:03d}Qz"]
    resource = minimal(rtype)
    if rtype == "Binary":  # not a DomainResource: no narrative, the content is the PHI
        markers[0] = base64.b64encode(f"Content{n:03d}Qz".encode()).decode()
        resource["data"] = markers[0]
    else:
        div = f'<div xmlns="http://www.w3.org/1999/xhtml">{markers[0]}</div>'
        resource["text"] = {"status": "generated", "div": div}
    resource["identifier"] = [{"system": "urn:test:mrn", "value": markers[1]}]
    if rtype in PERSON_NAMED:
        markers.append(f"Family{n:03d}Qz")
        resource["name"] = [{"family": markers[-1], "given": ["Ann"]}]
    return resource, markers


def _create(client: httpx.Client, rtype: str, resource: dict[str, Any]) -> tuple[bool, bool]:
    """(stored, identifier kept): a type whose identifier is a single value, or that has none,
    is retried with that shape; nothing else about the instance changes."""
    identifier = resource.pop("identifier")
    for shape in (identifier, identifier[0], None):
        body = resource if shape is None else {**resource, "identifier": shape}
        response = client.post(f"/{rtype}", json=body)
        if response.status_code == 201:
            return True, shape is not None
        assert response.status_code in (400, 422), (rtype, response.text[:300])
    return False, False


def test_a_dump_holds_no_identifying_value_of_any_type(
    live_service: Service, module_database: Database, tmp_path: Path
) -> None:
    written: dict[str, list[str]] = {}
    with_identifier = 0
    with client_for(live_service) as client:
        for n, rtype in enumerate(sorted(ops.TYPES - {"Bundle"})):
            resource, markers = _marked(rtype, n)
            stored, kept = _create(client, rtype, resource)
            assert stored, rtype
            with_identifier += kept
            written[rtype] = markers if kept else [m for m in markers if "Ident" not in m]
    assert len(written) >= 130
    assert with_identifier >= 100  # most types have an identifier: the scan covers them
    dump = tmp_path / "dump.sql"
    subprocess.run(
        [
            str(bin_dir() / "pg_dump"),
            "--no-owner",
            "-f",
            str(dump),
            "-d",
            module_database.owner_url,
        ],
        check=True,
        capture_output=True,
        env={**os.environ},
        timeout=120,
    )
    text = dump.read_text(errors="replace").lower()
    assert "fhir_resource_version" in text
    leaked = {t: [m for m in ms if m.lower() in text] for t, ms in written.items()}
    assert {t: ms for t, ms in leaked.items() if ms} == {}
