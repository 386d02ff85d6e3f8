"""Production tokens: RS256/ES256 keys served as JWKS by a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from tests.security.conftest import json_server

from healthstack.config import Settings
from healthstack.security.principal import Principal
from healthstack.security.verifier import AuthError, TokenVerifier

ISSUER = "https://idp.example.test"
AUDIENCE = "healthstack-api"


class Provider:
    """An identity provider's key set; the handler serves whatever `keys` holds right now."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.hits = 0

    def add_rsa(self, kid: str) -> rsa.RSAPrivateKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys[kid] = {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": kid,
                          "use": "sig", "alg": "RS256"}  # fmt: skip
        return key

    def add_ec(self, kid: str) -> ec.EllipticCurvePrivateKey:
        key = ec.generate_private_key(ec.SECP256R1())
        self.keys[kid] = {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": kid,
                          "use": "sig", "alg": "ES256"}  # fmt: skip
        return key


@pytest.fixture
def provider() -> Iterator[tuple[Provider, str]]:
    state = Provider()

    def document() -> dict[str, Any]:
        state.hits += 1
        return {"keys": list(state.keys.values())}

    with json_server(document) as url:
        yield state, url


def verifier(url: str, **overrides: Any) -> TokenVerifier:
    settings = Settings(env="production", oidc_issuer=ISSUER, oidc_audience=AUDIENCE,
                        oidc_jwks_url=url, secret_key_base="s" * 64).with_overrides(**overrides)  # fmt: skip
    return TokenVerifier(settings)


def sign(key: Any, kid: str, alg: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "clinician-7", "iat": now, "exp": now + 300,
            "scope": "user/Patient.rs", "azp": "ward-app", "jti": uuid.uuid4().hex} | claims  # fmt: skip
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def check(v: TokenVerifier, token: str) -> Principal:
    return asyncio.run(v.verify(token))


def refused(v: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthError) as error:
        check(v, token)
    return error.value.reason


def test_rs256_and_es256_tokens_are_accepted(provider: tuple[Provider, str]) -> None:
    idp, url = provider
    rsa_key, ec_key = idp.add_rsa("r1"), idp.add_ec("e1")
    v = verifier(url)
    principal = check(v, sign(rsa_key, "r1", "RS256"))
    assert (principal.subject, principal.client_id) == ("clinician-7", "ward-app")
    assert principal.scopes == frozenset({"user/Patient.rs"})
    assert check(v, sign(ec_key, "e1", "ES256")).subject == "clinician-7"
    assert idp.hits == 1  # cached


def test_claims_are_checked(provider: tuple[Provider, str]) -> None:
    idp, url = provider
    key = idp.add_rsa("r1")
    v = verifier(url)
    assert refused(v, sign(key, "r1", "RS256", iss="https://evil")) == "invalid"
    assert refused(v, sign(key, "r1", "RS256", aud="other-api")) == "invalid"
    assert refused(v, sign(key, "r1", "RS256", exp=int(time.time()) - 60)) == "expired"
    assert refused(v, sign(key, "r1", "RS256", nbf=int(time.time()) + 120)) == "not_yet_valid"
    long_lived = sign(key, "r1", "RS256", exp=int(time.time()) + 7200)
    assert refused(v, long_lived) == "lifetime"
    # Within the 30 s skew: a token that expired 10 s ago still passes.
    assert check(v, sign(key, "r1", "RS256", exp=int(time.time()) - 10)).subject == "clinician-7"


def test_forged_key_with_a_known_kid_is_refused(provider: tuple[Provider, str]) -> None:
    idp, url = provider
    idp.add_rsa("r1")
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert refused(verifier(url), sign(forger, "r1", "RS256")) == "invalid"


def test_hs256_is_refused_in_production(provider: tuple[Provider, str]) -> None:
    _, url = provider
    token = jwt.encode({"sub": "x"}, "s" * 64, algorithm="HS256")
    assert refused(verifier(url), token) == "algorithm"


def test_key_rotation_refreshes_on_unknown_kid(provider: tuple[Provider, str]) -> None:
    idp, url = provider
    old = idp.add_rsa("2026-01")
    v = verifier(url)
    v.jwks.min_interval = 0.2  # type: ignore[union-attr]
    assert check(v, sign(old, "2026-01", "RS256")).subject == "clinician-7"
    new = idp.add_rsa("2026-02")
    del idp.keys["2026-01"]
    time.sleep(0.25)
    assert check(v, sign(new, "2026-02", "RS256")).subject == "clinician-7"
    assert idp.hits == 2
    # The withdrawn key is gone from the refreshed set.
    assert refused(v, sign(old, "2026-01", "RS256")) == "key"


def test_verified_tokens_are_cached_until_they_expire(provider: tuple[Provider, str]) -> None:
    idp, url = provider
    key = idp.add_rsa("r1")
    v = verifier(url)
    token = sign(key, "r1", "RS256", exp=int(time.time()) - 28)  # expires within the leeway
    assert check(v, token) is check(v, token)  # the same Principal object: not re-verified
    time.sleep(2.1)
    assert refused(v, token) == "expired"


def test_unknown_kid_refreshes_are_rate_limited(provider: tuple[Provider, str]) -> None:
    idp, url = provider
    idp.add_rsa("r1")
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    v = verifier(url)
    for n in range(20):
        assert refused(v, sign(stranger, f"made-up-{n}", "RS256")) == "key"
    assert idp.hits == 1


def _forge(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A token with any header and claims, signed with nothing meaningful (the header decides)."""
    import base64

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.{part({'sig': 'x'})}"


@pytest.mark.parametrize(("header_alg", "kid"), [("ES256", "r1"), ("RS256", "e1")])
def test_algorithm_of_another_key_family_is_a_clean_refusal(
    provider: tuple[Provider, str], header_alg: str, kid: str
) -> None:
    # Issue 12 item 7: an ES256 header with an RSA key's kid (or the reverse) was a 500.
    idp, url = provider
    idp.add_rsa("r1"), idp.add_ec("e1")
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "iat": now, "exp": now + 60}
    assert refused(verifier(url), _forge({"alg": header_alg, "kid": kid}, claims)) == "algorithm"


def test_a_key_published_with_another_alg_refuses_the_token(provider: tuple[Provider, str]) -> None:
    idp, url = provider
    key = idp.add_rsa("r1")
    idp.keys["r1"]["alg"] = "RS512"  # the provider says this key is for RS512 only
    assert refused(verifier(url), sign(key, "r1", "RS256")) == "algorithm"


CLAIM_VALUES = [
    "soon",
    "",
    None,
    True,
    [1],
    {"a": 1},
    1.5e308,
    -(2**70),
    2**70,
    float("nan"),
    "1700000000",
]


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "sub", "jti", "patient", "scope"])
@pytest.mark.parametrize("value", CLAIM_VALUES, ids=repr)
def test_signed_claims_of_the_wrong_type_are_refused_not_crashed(
    provider: tuple[Provider, str], claim: str, value: Any
) -> None:
    """Every signed claim of a wrong type gives AuthError (a 401), never another exception."""
    idp, url = provider
    key = idp.add_rsa("r1")
    v = verifier(url)
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "iat": now,
                              "exp": now + 60, claim: value}  # fmt: skip
    body = json.dumps(claims, allow_nan=True).replace("NaN", "1e999")
    token = jwt.api_jws.encode(body.encode(), key, algorithm="RS256", headers={"kid": "r1"})
    try:
        principal = check(v, token)
    except AuthError:
        return
    # Accepted only where the value is legitimately of the claim's type.
    assert claim in ("sub", "jti", "patient", "scope")
    assert isinstance(value, str)
    assert value or claim != "sub"
    assert principal.subject


def test_garbage_tokens_are_refused(provider: tuple[Provider, str]) -> None:
    _, url = provider
    v = verifier(url)
    for token in ["a.b.c", "x" * 5000, "e30.e30.", _forge({"alg": "ES256", "kid": 7}, {}),
                  _forge({"alg": "none"}, {"sub": "x"}), _forge({"alg": ["RS256"]}, {})]:  # fmt: skip
        with pytest.raises(AuthError):
            check(v, token)
