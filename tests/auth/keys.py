"""Client keys for the Backend Services tests: generated per session, public halves registered."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_CLIENT, EC_CLIENT, URL_CLIENT = "backend-rsa", "backend-ec", "backend-jwks-url"


def public_jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if alg.startswith("RS") else jwt.algorithms.ECAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(key.public_key(), as_dict=True)
    return jwk | {"kid": kid, "alg": alg, "use": "sig"}


BACKEND_CLIENTS = [
    {"client_id": RSA_CLIENT, "scope": "system/*.rs system/Observation.rs",
     "jwks": {"keys": [public_jwk(RSA_KEY, "rsa-1", "RS384")]}},
    {"client_id": EC_CLIENT, "scope": "system/*.rs",
     "jwks": {"keys": [public_jwk(EC_KEY, "ec-1", "ES384")]}},
]  # fmt: skip


def assertion(client_id: str, audience: str, *, jti: str | None = None, lifetime: int = 120,
              now: float | None = None) -> str:  # fmt: skip
    at = int(now if now is not None else time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": audience, "exp": at + lifetime,
              "iat": at, "jti": jti or uuid.uuid4().hex}  # fmt: skip
    if client_id == EC_CLIENT:
        return jwt.encode(claims, EC_KEY, algorithm="ES384", headers={"kid": "ec-1"})
    kid = "rsa-url" if client_id == URL_CLIENT else "rsa-1"
    return jwt.encode(claims, RSA_KEY, algorithm="RS384", headers={"kid": kid})


def url_client(jwks_uri: str) -> dict[str, Any]:
    """A client whose keys are published at ``jwks_uri`` (served by the test, see conftest)."""
    return {"client_id": URL_CLIENT, "scope": "system/*.rs", "jwks_uri": jwks_uri}


URL_JWKS = {"keys": [public_jwk(RSA_KEY, "rsa-url", "RS384")]}
