"""Bearer tokens: HS256 JWTs with claims sub (user id), email, name (optional) and exp, checked by the
rules of SPEC §10: exp required and a number; sub, email and name printable strings; sub never the
platform's (`system`) nor an API key's (`key:…`); the email valid in its canonical form
(common.auth.canonical_email), which is the form the identity carries.

Mint one for local use:
    .venv/bin/python -m gateway.tokens --sub alice --email alice@example.com --name "Alice"
"""
import argparse
import time

import jwt

from common.auth import (
    KEY_ACTOR_PREFIX,
    SYSTEM_ACTOR,
    USER_ID_MAX_LENGTH,
    Identity,
    canonical_email,
    is_printable_text,
    is_reserved_user_id,
    is_valid_user_id,
)
from common.config import settings
from common.errors import Unauthenticated

ALGORITHM = "HS256"
# `exp` is required: a token without one would be valid forever.
REQUIRED_CLAIMS = ("exp", "sub", "email")
NAME_MAX_LENGTH = 200


def secret():
    return settings().jwt_secret


def mint(sub, email, name="", ttl_seconds=24 * 3600):
    now = int(time.time())
    claims = {"sub": sub, "email": email, "name": name, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret(), algorithm=ALGORITHM)


def identity_from_header(header):
    """The Identity in an `Authorization: Bearer <JWT>` header, or Unauthenticated: missing_token,
    token_expired, or invalid_token (with `field` naming the claim at fault when it is one)."""
    if not header:
        raise Unauthenticated("Sign in: send Authorization: Bearer <token>.", code="missing_token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'.", code="invalid_token")
    try:
        claims = jwt.decode(token.strip(), secret(), algorithms=[ALGORITHM],
                            options={"require": list(REQUIRED_CLAIMS)})
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("The token has expired.", code="token_expired")
    except jwt.MissingRequiredClaimError as error:
        raise _invalid_claim(error.claim, "is missing")
    except jwt.exceptions.InvalidSubjectError:   # a sub that is not a string
        raise _invalid_claim("sub", "must be a string")
    except jwt.InvalidTokenError:
        raise Unauthenticated("The token is not valid.", code="invalid_token")
    return identity_from_claims(claims)


def identity_from_claims(claims):
    """The Identity that verified claims name (SPEC §10), or Unauthenticated invalid_token."""
    # PyJWT compares int(exp), so it lets "4102444800" (a string) through; a number is required.
    if isinstance(claims["exp"], bool) or not isinstance(claims["exp"], (int, float)):
        raise _invalid_claim("exp", "must be a number")
    sub, name = claims["sub"], claims.get("name")
    name = "" if name is None else name
    if not is_valid_user_id(sub):
        raise _invalid_claim("sub", f"must be 1 to {USER_ID_MAX_LENGTH} printable characters")
    if is_reserved_user_id(sub):
        raise _invalid_claim("sub", f"names the platform or an API key ('{SYSTEM_ACTOR['id']}', "
                                    f"'{KEY_ACTOR_PREFIX}…'), never a user")
    email = canonical_email(claims["email"])
    if email is None:
        raise _invalid_claim("email", "is not a valid email address, or is written with "
                                      "compatibility characters (such as the Kelvin sign for a K)")
    if not is_printable_text(name) or len(name) > NAME_MAX_LENGTH:
        raise _invalid_claim("name", f"must be at most {NAME_MAX_LENGTH} printable characters")
    return Identity(sub, email, name.strip())


def _invalid_claim(claim, problem):
    return Unauthenticated(f"The token's {claim} claim {problem}.", code="invalid_token", field=claim)


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
