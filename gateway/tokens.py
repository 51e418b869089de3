"""Bearer tokens: HS256 JWTs with claims sub (user id), email, name.

Mint one for local use:
    .venv/bin/python -m gateway.tokens --sub alice --email alice@example.com --name "Alice"
"""
import argparse
import time

import jwt

from common.auth import Identity, is_reserved_user_id, is_valid_user_id
from common.config import settings
from common.errors import Unauthenticated

ALGORITHM = "HS256"


def secret():
    return settings().jwt_secret


def mint(sub, email, name="", ttl_seconds=24 * 3600):
    now = int(time.time())
    claims = {"sub": sub, "email": email, "name": name, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret(), algorithm=ALGORITHM)


def identity_from_header(header):
    """The Identity in an `Authorization: Bearer <JWT>` header, or Unauthenticated."""
    if not header:
        raise Unauthenticated("Sign in: send Authorization: Bearer <token>.", code="missing_token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'.", code="invalid_token")
    try:
        claims = jwt.decode(token.strip(), secret(), algorithms=[ALGORITHM],
                            options={"require": ["sub", "email"]})
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("The token has expired.", code="token_expired")
    except jwt.InvalidTokenError:
        raise Unauthenticated("The token is not valid.", code="invalid_token")
    sub, email, name = claims.get("sub"), claims.get("email"), claims.get("name") or ""
    if not all(isinstance(v, str) for v in (sub, email, name)) \
            or not is_valid_user_id(sub) or is_reserved_user_id(sub) \
            or "@" not in email or len(email) > 320 or len(name) > 200 \
            or any("\x00" in value for value in (sub, email, name)):
        raise Unauthenticated("The token's sub, email or name claim is not valid.", code="invalid_token")
    return Identity(sub, email.strip().lower(), name.strip())


def main():
    parser = argparse.ArgumentParser(description="Mint a development bearer token for the gateway.")
    parser.add_argument("--sub", required=True, help="user id")
    parser.add_argument("--email", required=True)
    parser.add_argument("--name", default="")
    parser.add_argument("--ttl", type=int, default=24 * 3600, help="seconds until it expires")
    args = parser.parse_args()
    print(mint(args.sub, args.email, args.name, args.ttl))


if __name__ == "__main__":
    main()
