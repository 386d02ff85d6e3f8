"""Clients registered with the embedded authorization server, from ``SMART_CLIENTS_FILE`` (JSON).

::

    {"clients": [
      {"client_id": "growth-chart", "redirect_uris": ["https://app.example/cb"],
       "launch_uri": "https://app.example/launch", "scope": "launch/patient openid fhirUser ..."},
      {"client_id": "etl", "jwks_uri": "https://etl.example/jwks.json", "scope": "system/*.rs"},
      {"client_id": "reports", "jwks": {"keys": [...]}, "scope": "system/Observation.rs"}
    ]}

A client without keys is public (authorization code + PKCE); one with ``jwks`` or ``jwks_uri``
authenticates with ``private_key_jwt`` (and may use ``client_credentials``: SMART Backend
Services). A malformed file is a startup error naming the file and the entry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin

from healthstack.errors import HealthstackError

PRIVATE_KEY_JWT = "private_key_jwt"


@dataclass(frozen=True)
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    redirect_uris: tuple[str, ...] = ()
    scope: str = ""
    launch_uri: str | None = None
    jwks: Mapping[str, Any] | None = None
    jwks_uri: str | None = None

    @property
    def confidential(self) -> bool:
        return self.jwks is not None or self.jwks_uri is not None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = set(self.scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact match only (RFC 9700 section 4.1.3)

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # no shared secrets: public clients, or asymmetric keys

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == (PRIVATE_KEY_JWT if self.confidential else "none")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and bool(self.redirect_uris)

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials":
            return self.confidential
        return grant_type in ("authorization_code", "refresh_token") and bool(self.redirect_uris)


def _strings(entry: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    value = entry.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise HealthstackError(f"{where}: {name} must be a list of strings")
    return tuple(value)


def _url(value: Any, name: str, where: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise HealthstackError(f"{where}: {name} must be an http(s) URL")
    return str(value)


def parse_client(entry: Any, where: str) -> Client:
    if not isinstance(entry, dict):
        raise HealthstackError(f"{where}: each client must be an object")
    client_id = entry.get("client_id")
    if not isinstance(client_id, str) or not client_id or len(client_id) > 128:
        raise HealthstackError(f"{where}: client_id must be a string of 1 to 128 characters")
    redirects = _strings(entry, "redirect_uris", where)
    for uri in redirects:
        _url(uri, "redirect_uris", where)
    jwks = entry.get("jwks")
    if jwks is not None and not (isinstance(jwks, dict) and isinstance(jwks.get("keys"), list)):
        raise HealthstackError(f'{where}: jwks must be a JWK Set ({{"keys": [...]}})')
    scope = entry.get("scope", "")
    if not isinstance(scope, str):
        raise HealthstackError(f"{where}: scope must be a space-separated string")
    return Client(client_id, redirects, scope, _url(entry.get("launch_uri"), "launch_uri", where),
                  jwks, _url(entry.get("jwks_uri"), "jwks_uri", where))  # fmt: skip


def load_clients(path: Path | None) -> dict[str, Client]:
    if path is None:
        return {}
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise HealthstackError(f"SMART_CLIENTS_FILE: cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise HealthstackError(f"SMART_CLIENTS_FILE: {path} is not JSON: {exc}") from exc
    entries = document.get("clients") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise HealthstackError(f'SMART_CLIENTS_FILE: {path} needs {{"clients": [...]}}')
    clients: dict[str, Client] = {}
    for index, entry in enumerate(entries):
        client = parse_client(entry, f"SMART_CLIENTS_FILE {path} client {index + 1}")
        if client.client_id in clients:
            raise HealthstackError(f"SMART_CLIENTS_FILE {path}: client_id "
                                   f"{client.client_id!r} is registered twice")  # fmt: skip
        clients[client.client_id] = client
    return clients
