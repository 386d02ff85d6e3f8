"""``healthstack token``: mint a development access token (HS256), never in production.

The key is derived from SECRET_KEY_BASE exactly as the service derives it (including the generated
development secrets under HEALTHSTACK_DATA_DIR), so a token minted here works against a local
``healthstack serve``. Production accepts only tokens from the identity provider.
"""

from __future__ import annotations

import argparse
import re

from healthstack.config import Settings
from healthstack.errors import HealthstackError
from healthstack.security import tokens

_TTL = re.compile(r"^(\d+)([smh]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_ttl(text: str) -> int:
    match = _TTL.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise HealthstackError(f"--ttl: expected a duration like 900, 30s, 15m or 1h, got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sub", required=True, help="subject: the user's unique id")
    parser.add_argument(
        "--scope", required=True,
        help='SMART scopes, space-separated, e.g. "user/Patient.cruds user/Observation.rs"',
    )  # fmt: skip
    parser.add_argument("--patient", help="patient context: confine the token to this Patient id")
    parser.add_argument("--ttl", default="15m", help="lifetime (default 15m; at most "
                        "TOKEN_MAX_LIFETIME_SECONDS)")  # fmt: skip
    parser.add_argument("--client-id", help="client_id claim (the calling application)")


def _secret_key_base(settings: Settings) -> str:
    from healthstack.commands.serve import development_settings

    key = development_settings(settings).secret_key_base
    if not key:
        raise HealthstackError("SECRET_KEY_BASE is not set and no development secrets exist")
    return key


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if settings.production:
        raise HealthstackError(
            "refusing to mint tokens with HEALTHSTACK_ENV=production: production accepts only "
            "tokens from the identity provider (OIDC_ISSUER)"
        )
    ttl = parse_ttl(args.ttl)
    if ttl > settings.token_max_lifetime:
        raise HealthstackError(f"--ttl {args.ttl} exceeds TOKEN_MAX_LIFETIME_SECONDS "
                               f"({settings.token_max_lifetime}); the service would refuse it")  # fmt: skip
    extra = {"client_id": args.client_id} if args.client_id else None
    token = tokens.mint_dev_token(_secret_key_base(settings), args.sub, args.scope,
                                  patient=args.patient, ttl_seconds=ttl, extra=extra)  # fmt: skip
    print(token)
    return 0
