"""SMART App Launch discovery: ``.well-known/smart-configuration`` and the CapabilityStatement's
``oauth-uris`` extension, both describing the same authorization server.

In production that server is the organisation's identity provider, configured by URL (its
capabilities too: only the operator knows what their IdP does). Elsewhere it is the embedded
development server mounted at ``/auth`` (:mod:`healthstack.auth.server`), and the capabilities are
exactly what that server implements.
"""

from __future__ import annotations

from typing import Any

from healthstack.config import Settings

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
FHIR_PREFIX = "/api/fhir"
AUTH_PREFIX = "/auth"
# What the resource server itself enforces whatever the authorization server (scopes.py, authz.py).
RESOURCE_SERVER_CAPABILITIES = ("permission-v2", "permission-patient", "permission-user")
# What the embedded server implements (tests/auth prove each one).
EMBEDDED_CAPABILITIES = (
    "launch-ehr",
    "launch-standalone",
    "client-public",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-standalone-patient",
    "permission-offline",
    "permission-online",
    *RESOURCE_SERVER_CAPABILITIES,
    "sso-openid-connect",
)
EMBEDDED_SCOPES = (
    "openid", "fhirUser", "launch", "launch/patient", "offline_access", "online_access",
    "patient/*.rs", "patient/*.cruds", "user/*.rs", "user/*.cruds", "system/*.rs",
)  # fmt: skip


def embedded(settings: Settings) -> bool:
    """Whether the embedded development authorization server serves this instance."""
    return settings.smart_embedded_as and not settings.production


def origin_of(base: str) -> str:
    """``https://host`` from the FHIR base URL ``https://host/api/fhir``."""
    return base.removesuffix(FHIR_PREFIX)


def endpoints(settings: Settings, base: str) -> dict[str, str] | None:
    """authorize/token (and issuer, jwks) URLs, or None when no authorization server is known."""
    if settings.smart_authorize_url and settings.smart_token_url:
        urls = {"authorize": settings.smart_authorize_url, "token": settings.smart_token_url}
        if settings.oidc_issuer:
            urls["issuer"] = settings.oidc_issuer
        if settings.oidc_jwks_url:
            urls["jwks"] = settings.oidc_jwks_url
        return urls
    if not embedded(settings):
        return None
    auth = origin_of(base) + AUTH_PREFIX
    return {"authorize": f"{auth}/authorize", "token": f"{auth}/token", "issuer": auth,
            "jwks": f"{auth}/jwks"}  # fmt: skip


def smart_configuration(settings: Settings, base: str) -> dict[str, Any] | None:
    urls = endpoints(settings, base)
    if urls is None:
        return None
    external = bool(settings.smart_authorize_url)
    capabilities = (
        sorted({*RESOURCE_SERVER_CAPABILITIES, *settings.smart_capabilities})
        if external
        else list(EMBEDDED_CAPABILITIES)
    )
    asymmetric = "client-confidential-asymmetric" in capabilities
    document: dict[str, Any] = {
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        # Only what the server does: the embedded one all of these, an IdP what it declares.
        "grant_types_supported": ["authorization_code"]
        + (["client_credentials"] if asymmetric else [])
        + ([] if external else ["refresh_token"]),
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": (["private_key_jwt"] if asymmetric else [])
        + (["none"] if "client-public" in capabilities else []),
        "scopes_supported": list(EMBEDDED_SCOPES),
        "capabilities": capabilities,
    }
    if asymmetric:
        document["token_endpoint_auth_signing_alg_values_supported"] = ["RS384", "ES384"]
    if "issuer" in urls:
        document["issuer"] = urls["issuer"]
    if "jwks" in urls:
        document["jwks_uri"] = urls["jwks"]
    return document


def oauth_uris_extension(settings: Settings, base: str) -> dict[str, Any] | None:
    """The CapabilityStatement ``rest.security`` extension naming the same endpoints."""
    urls = endpoints(settings, base)
    if urls is None:
        return None
    return {
        "url": OAUTH_URIS,
        "extension": [
            {"url": "authorize", "valueUri": urls["authorize"]},
            {"url": "token", "valueUri": urls["token"]},
        ],
    }
