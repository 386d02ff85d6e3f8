"""The embedded development authorization server, on authlib's OAuth 2 / OpenID Connect grants.

authlib does the protocol (code grant, PKCE, refresh, client assertions, id_token); this module
supplies storage and policy: S256 only and always, codes single-use (popped on first exchange),
SMART launch context, and access tokens the service's verifier already accepts (HS256 under the
key derived from SECRET_KEY_BASE, like ``healthstack token``, so never in production).
Storage is in memory (one development process) except assertion ``jti`` values, which go to the
database (:mod:`healthstack.auth.backend`) so a replay is refused by every replica.
"""

from __future__ import annotations

import contextvars
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import AuthorizationServer as _Server
from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants import OpenIDCode
from joserfc.jwk import RSAKey

from healthstack.auth.backend import KeyAssertion
from healthstack.auth.clients import PRIVATE_KEY_JWT, Client
from healthstack.security import tokens

CODE_TTL = 60  # seconds: a code is exchanged at once by the app's redirect handler
APP_TOKEN_TTL = 900
BACKEND_TOKEN_TTL = 300  # SMART Backend Services: short-lived, no refresh
SPENT_LIMIT = 10_000
OFFLINE_TTL = 30 * 86400
ONLINE_TTL = 3600
# The issuer of id_tokens for this request (the server answers on whatever origin it is reached).
issuer_var: contextvars.ContextVar[str] = contextvars.ContextVar("smart_issuer", default="")


@dataclass(frozen=True)
class User:
    sub: str
    fhir_user: str | None
    patient: str | None  # the launch context the user picked or the EHR gave


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    code_challenge: str
    code_challenge_method: str
    nonce: str | None
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.expires_at - CODE_TTL)

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class Refresh:
    client_id: str
    scope: str
    user: User
    expires_at: float
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.expires_at - time.time()))

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> User:
        return self.user


class Payload(OAuth2Payload):  # type: ignore[misc]
    """Query and form parameters, repeated names kept (authlib refuses repeated parameters)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._list: dict[str, list[str]] = defaultdict(list)
        for name, value in pairs:
            self._list[name].append(value)
        self._data = {name: values[0] for name, values in self._list.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._list


class Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, method: str, uri: str, headers: dict[str, str],
                 pairs: list[tuple[str, str]]) -> None:  # fmt: skip
        super().__init__(method, uri, headers=headers)
        self.payload = Payload(pairs)

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE required on every authorization request, S256 only (SMART App Launch 2.x)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge (S256)")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none", PRIVATE_KEY_JWT]

    def save_authorization_code(self, code: str, request: Request) -> None:
        data = request.payload.data
        self.server.codes[code] = Code(
            request.client.client_id, data.get("redirect_uri", ""), request.scope, request.user,
            data["code_challenge"], data["code_challenge_method"], data.get("nonce"),
            time.time() + CODE_TTL,
        )  # fmt: skip

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        status, token, headers = super().create_token_response()
        self.server.spend(self.request.form.get("code", ""), token.get("refresh_token"))
        return status, token, headers

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        # Popped, not read: a second exchange of the same code finds nothing (invalid_grant),
        # and revokes what the first exchange issued (RFC 6749 section 4.1.2).
        self.server.replayed(code)
        found: Code | None = self.server.codes.pop(code, None)
        if found is None or found.client_id != client.client_id or time.time() > found.expires_at:
            return None
        return found

    def delete_authorization_code(self, authorization_code: Code) -> None:
        return None  # already gone

    def authenticate_user(self, authorization_code: Code) -> User:
        return authorization_code.user


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none", PRIVATE_KEY_JWT]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotated: each refresh token works once

    def authenticate_refresh_token(self, refresh_token: str) -> Refresh | None:
        found: Refresh | None = self.server.refreshes.get(refresh_token)
        if found is None or found.is_expired() or found.is_revoked():
            return None
        return found

    def authenticate_user(self, credential: Refresh) -> User:
        return credential.user

    def revoke_old_credential(self, refresh_token: Refresh) -> None:
        refresh_token.revoked = True

    def issue_token(self, user: User, refresh_token: Refresh) -> dict[str, Any]:
        token: dict[str, Any] = super().issue_token(user, refresh_token)
        # Rotation must not extend the session: the new refresh token ends when the one the user
        # consented to would have (offline_access 30 days, online_access an hour), however often
        # it is refreshed.
        renewed = self.server.refreshes.get(token.get("refresh_token", ""))
        if renewed is not None:
            renewed.expires_at = min(renewed.expires_at, refresh_token.expires_at)
        return token


class BackendGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = [PRIVATE_KEY_JWT]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        # authlib passes the requested scope through; only what the client is registered for is
        # ever granted, and asking for nothing grantable is invalid_scope (RFC 6749 5.2).
        if not self.request.client.get_allowed_scope(self.request.payload.scope):
            raise InvalidScopeError("none of the requested scopes is registered for this client")


class IdToken(OpenIDCode):  # type: ignore[misc]
    def __init__(self, key: RSAKey) -> None:
        super().__init__(require_nonce=False)
        self.key = key

    def exists_nonce(self, nonce: str, request: Request) -> bool:
        return False

    def resolve_client_private_key(self, client: Client) -> RSAKey:
        return self.key

    def get_client_algorithm(self, client: Client) -> str:
        return "RS256"

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": "RS256", "kid": str(self.key.kid)}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        return {"iss": issuer_var.get(), "aud": [client.client_id]}

    def generate_user_info(self, user: User, scope: str) -> dict[str, str]:
        info = {"sub": user.sub}
        if "fhirUser" in scope.split() and user.fhir_user:
            info["fhirUser"] = user.fhir_user
        return info


@dataclass
class Launch:
    """An EHR launch: the context the EHR hands the app through the opaque ``launch`` value."""

    client_id: str
    patient: str
    expires_at: float


@dataclass
class Stores:
    codes: dict[str, Code] = field(default_factory=dict)
    refreshes: dict[str, Refresh] = field(default_factory=dict)
    launches: dict[str, Launch] = field(default_factory=dict)
    spent: dict[str, str | None] = field(default_factory=dict)  # code -> its refresh token


class SmartServer(_Server):  # type: ignore[misc]
    def __init__(self, clients: dict[str, Client], secret_key_base: str, max_lifetime: int,
                 assertion: KeyAssertion) -> None:  # fmt: skip
        super().__init__()
        self.clients = clients
        self.secret_key_base = secret_key_base
        self.app_ttl = min(APP_TOKEN_TTL, max_lifetime)
        self.id_key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8)})
        stores = Stores()
        self.codes, self.refreshes, self.launches = stores.codes, stores.refreshes, stores.launches
        self.spent = stores.spent
        self.register_client_auth_method(PRIVATE_KEY_JWT, assertion)
        self.register_token_generator("default", self.mint)
        self.register_grant(CodeGrant, [S256Only(required=True), IdToken(self.id_key)])
        self.register_grant(RefreshGrant)
        self.register_grant(BackendGrant)

    def query_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def spend(self, code: str, refresh: str | None) -> None:
        if len(self.spent) >= SPENT_LIMIT:  # bounded: codes live a minute, so do replays
            self.spent.clear()
        self.spent[code] = refresh

    def replayed(self, code: str) -> None:
        if code in self.spent:
            refresh = self.refreshes.get(self.spent[code] or "")
            if refresh is not None:
                refresh.revoked = True

    def save_token(self, token: dict[str, Any], request: Request) -> None:
        return None  # access tokens are self-contained JWTs; refresh tokens saved in mint()

    def create_oauth2_request(self, request: Request) -> Request:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Any:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def mint(self, grant_type: str, client: Client, user: User | None = None,
             scope: str | None = None, expires_in: int | None = None,
             include_refresh_token: bool = True) -> dict[str, Any]:  # fmt: skip
        scope = client.get_allowed_scope(scope)  # never more than the registration allows
        names = scope.split()
        backend = grant_type == "client_credentials"
        ttl = BACKEND_TOKEN_TTL if backend else self.app_ttl
        subject = client.client_id if user is None else user.sub
        # The patient claim confines the token to one compartment (authz.patient_scope): only
        # when patient/ scopes were granted, so user/ scopes keep their reach in an EHR launch.
        patient = user.patient if user is not None else None
        confined = patient if any(n.startswith("patient/") for n in names) else None
        extra: dict[str, Any] = {"client_id": client.client_id}
        if user is not None and user.fhir_user:
            extra["fhirUser"] = user.fhir_user
        access = tokens.mint_dev_token(self.secret_key_base, subject, scope, patient=confined,
                                       ttl_seconds=ttl, extra=extra)  # fmt: skip
        token: dict[str, Any] = {"token_type": "Bearer", "access_token": access,
                                 "expires_in": ttl, "scope": scope}  # fmt: skip
        if patient and ("launch/patient" in names or "launch" in names):
            token["patient"] = patient
            token["need_patient_banner"] = True
        lived = OFFLINE_TTL if "offline_access" in names else ONLINE_TTL
        if (
            user is not None
            and include_refresh_token
            and ("offline_access" in names or "online_access" in names)
        ):
            refresh = secrets.token_urlsafe(32)
            self.refreshes[refresh] = Refresh(client.client_id, scope, user, time.time() + lived)
            token["refresh_token"] = refresh
        return token
