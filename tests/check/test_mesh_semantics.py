"""Issue 17, mesh semantics beyond the registry fixtures: which ServiceEntries PHI sidecars
import (exportTo), and mesh-wide DestinationRules whose wildcard host reaches STRICT pods."""

from __future__ import annotations

from .test_semantics import findings

SERVICE_ENTRY = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: any-https, namespace: {ns}}}
spec:
  hosts: ["*.example.com"]
  {export}
  location: {location}
  resolution: NONE
  ports: [{{number: 443, name: tls, protocol: TLS}}]
"""


def entry(ns: str = "app", export: str = "", location: str = "MESH_EXTERNAL") -> str:
    return SERVICE_ENTRY.format(ns=ns, export=export, location=location)


def test_wildcard_service_entry_in_a_phi_namespace_is_reported() -> None:
    [found] = findings(entry(), "HS-MS-007")
    assert "*.example.com" in found
    assert "PHI namespace(s) app:" in found


def test_wildcard_service_entry_exported_from_elsewhere_reaches_phi_sidecars() -> None:
    # exportTo defaults to every namespace: an entry in a tooling namespace is imported by app.
    assert findings(entry(ns="tools"), "HS-MS-007")
    assert findings(entry(ns="tools", export='exportTo: ["app"]'), "HS-MS-007")


def test_wildcard_service_entry_kept_out_of_phi_namespaces_passes() -> None:
    assert findings(entry(ns="tools", export='exportTo: ["."]'), "HS-MS-007") == []
    assert findings(entry(export='exportTo: ["~"]'), "HS-MS-007") == []
    assert findings(entry(location="MESH_INTERNAL"), "HS-MS-007") == []
