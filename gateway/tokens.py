"""Bearer tokens: JWTs with claims sub (user id), email, name (optional) and exp, signed either
- HS256 with JWT_SECRET (development: the gateway's own tokens, `mint` below), or
- RS256/ES256 by an identity provider whose keys are published as a JWKS (JWT_JWKS: a file or an http(s)
  URL, cached; `JwksKeys`), verified with the key its `kid` names and with `iss` and `aud` as configured,
and checked by the rules of SPEC §10: exp required and a number; sub, email and name printable strings; sub
never the platform's (`system`) nor an API key's (`key:…`); the email valid in its canonical form
(common.auth.canonical_email), which is the form the identity carries.

Algorithm confusion is impossible by construction: the header's `alg` only chooses which key to try, and
each key is used with its one algorithm (the secret with HS256, a JWKS key with the algorithm of its own
type and curve), so an HS256 token "signed" with a public key is checked against the secret and fails, and
`none` (or any other algorithm) is refused outright.

Mint one for local use:
    .venv/bin/python -m gateway.tokens --sub alice --email alice@example.com --name "Alice"
"""
import argparse
import json
import logging
import threading
import time

import jwt
import requests

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
from common.errors import ServiceUnavailable, Unauthenticated
from common.schemas import name_problem

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
# The one key type (and curve) each JWKS algorithm is used with, whatever a JWK's own `alg` says.
JWKS_KEY_TYPES = {"RS256": ("RSA", None), "ES256": ("EC", "P-256")}
# `exp` is required: a token without one would be valid forever.
REQUIRED_CLAIMS = ("exp", "sub", "email")
NAME_MAX_LENGTH = 200
# An unknown `kid` refreshes the JWKS (the provider rotated its keys), but at most this often: otherwise
# anyone could make the gateway fetch the JWKS on every request by sending made-up kids.
JWKS_MIN_REFRESH_SECONDS = 10.0
# (connect, read) seconds: a fetch holds up the requests waiting for keys (green threads: the gateway's
# event loop itself keeps serving), so a provider that does not answer must not hold them up for long.
JWKS_FETCH_TIMEOUT = (2.0, 3.0)
JWKS_MAX_BYTES = 512 * 1024


# Clocks differ a little: a token minted for exactly JWT_MAX_TOKEN_AGE by a clock a little ahead is taken.
EXP_LEEWAY_SECONDS = 60


def secret():
    return settings().jwt_secret


def mint(sub, email, name="", ttl_seconds=24 * 3600):
    now = int(time.time())
    claims = {"sub": sub, "email": email, "name": name, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret(), algorithm=ALGORITHM)


def bearer_credential(header):
    """What an `Authorization: Bearer <credential>` header carries (a JWT or an API key), or
    Unauthenticated: missing_token, or invalid_token for another scheme or an empty credential."""
    if not header:
        raise Unauthenticated("Sign in: send Authorization: Bearer <token>.", code="missing_token")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthenticated("The Authorization header must be 'Bearer <token>'.", code="invalid_token")
    return credential.strip()


def identity_from_header(header):
    """The Identity in an `Authorization: Bearer <JWT>` header (see identity_from_token)."""
    return identity_from_token(bearer_credential(header))


def identity_from_token(token):
    """The Identity a JWT names, or Unauthenticated: token_expired, or invalid_token (with `field` naming
    the claim, or the header's `alg` or `kid`, at fault when it is one); ServiceUnavailable
    identity_provider_unavailable when the JWKS has never been read."""
    config = settings()
    try:
        token_header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise Unauthenticated("The token is not valid.", code="invalid_token")
    algorithm = token_header.get("alg")
    # HS256 beside a JWKS only when JWT_SECRET is set explicitly: the development default is public (it
    # is in the README), so accepting it in a deployment that signs in through an identity provider would
    # let anyone mint tokens.
    if algorithm == ALGORITHM and (config.jwt_jwks is None or config.jwt_secret_given):
        return _verified(token, config.jwt_secret, ALGORITHM)
    if algorithm in JWKS_KEY_TYPES and config.jwt_jwks is not None:
        kid = token_header.get("kid")
        if not isinstance(kid, str):
            raise Unauthenticated("The token's header names no key (kid).", code="invalid_token", field="kid")
        key = jwks_keys(config).key(kid)
        if key is None:
            raise Unauthenticated("The token is signed with a key the identity provider does not publish.",
                                  code="invalid_token", field="kid")
        if key.algorithm_name != algorithm:
            raise Unauthenticated(f"The token's key is for {key.algorithm_name}, not {algorithm}.",
                                  code="invalid_token", field="alg")
        return _verified(token, key.key, algorithm, issuer=config.jwt_issuer, audience=config.jwt_audience)
    accepted = ([ALGORITHM] if config.jwt_jwks is None or config.jwt_secret_given else []) + \
        (list(JWKS_KEY_TYPES) if config.jwt_jwks is not None else [])
    raise Unauthenticated(f"Tokens signed with {', '.join(accepted)} are accepted, not {algorithm!s:.20}.",
                          code="invalid_token", field="alg")


def _verified(token, key, algorithm, issuer=None, audience=None):
    """The Identity of a token verified with `key` by `algorithm` alone (and `iss`/`aud`, when given)."""
    required = list(REQUIRED_CLAIMS) + (["iss", "aud"] if issuer is not None else [])
    try:
        claims = jwt.decode(token, key, algorithms=[algorithm], issuer=issuer, audience=audience,
                            options={"require": required})
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("The token has expired.", code="token_expired")
    except jwt.MissingRequiredClaimError as error:
        raise _invalid_claim(error.claim, "is missing")
    except jwt.exceptions.InvalidSubjectError:   # a sub that is not a string
        raise _invalid_claim("sub", "must be a string")
    except jwt.InvalidIssuerError:
        raise _invalid_claim("iss", "names another issuer")
    except jwt.InvalidAudienceError:
        raise _invalid_claim("aud", "names another audience")
    except jwt.InvalidTokenError:
        raise Unauthenticated("The token is not valid.", code="invalid_token")
    return identity_from_claims(claims)


class JwksUnavailable(Exception):
    """The JWKS could not be read: unreachable, not 200, too large, or not a JWKS."""


class JwksKeys:
    """The RS256/ES256 signing keys (kid -> jwt.PyJWK) of one JWKS, read from its file or URL at most every
    `cache_seconds`, and again when a token names an unknown kid (at most every JWKS_MIN_REFRESH_SECONDS).

    When a refresh fails, the keys last read stay in use (a provider's brief outage must not sign everyone
    out; keys are rotated with overlap, so a stale set still holds the current key for a while). Only when
    the JWKS has never been read is a token's validity unknown: then ServiceUnavailable (503), not a 401,
    because the token may well be good; a 401 would tell the client to throw it away and sign in again."""

    def __init__(self, source, cache_seconds, clock=time.monotonic):
        self.source, self.cache_seconds, self._clock = source, cache_seconds, clock
        self._keys, self._read_at, self._tried_at = None, None, None
        self._lock = threading.Lock()   # green under the gateway's monkey patching: one fetch at a time

    def key(self, kid):
        """The key named `kid`, or None when the JWKS (refreshed if allowed) has none by that name."""
        with self._lock:
            if self._keys is None or self._clock() - self._read_at >= self.cache_seconds:
                self._refresh()
            elif kid not in self._keys:
                self._refresh()
            if self._keys is None:
                raise ServiceUnavailable("The identity provider's keys cannot be read; try again shortly.",
                                         code="identity_provider_unavailable")
            return self._keys.get(kid)

    def _refresh(self):
        now = self._clock()
        if self._tried_at is not None and now - self._tried_at < JWKS_MIN_REFRESH_SECONDS:
            return
        self._tried_at = now
        try:
            self._keys, self._read_at = signing_keys(self._read()), now
        except JwksUnavailable as exc:
            log.warning("JWKS %s cannot be read (%s); %s", self.source, exc,
                        "keeping the keys read before" if self._keys is not None else "no keys yet")

    def _read(self):
        if self.source.startswith(("http://", "https://")):
            try:
                with requests.get(self.source, timeout=JWKS_FETCH_TIMEOUT, stream=True,
                                  headers={"Accept": "application/json"}) as response:
                    if response.status_code != 200:
                        raise JwksUnavailable(f"HTTP {response.status_code}")
                    raw = response.raw.read(JWKS_MAX_BYTES + 1, decode_content=True)
            except requests.RequestException as exc:
                raise JwksUnavailable(type(exc).__name__) from None
        else:
            try:
                with open(self.source, "rb") as file:
                    raw = file.read(JWKS_MAX_BYTES + 1)
            except OSError as exc:
                raise JwksUnavailable(exc.strerror) from None
        if len(raw) > JWKS_MAX_BYTES:
            raise JwksUnavailable(f"larger than {JWKS_MAX_BYTES} bytes")
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise JwksUnavailable("not JSON") from None


def signing_keys(jwks):
    """kid -> jwt.PyJWK of the keys of a JWKS document that can verify RS256 or ES256 signatures; keys of
    other types or algorithms, for encryption (`use` other than sig), or without a kid are left out."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise JwksUnavailable("not a JWKS (no keys list)")
    keys = {}
    for jwk in jwks["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or jwk.get("use", "sig") != "sig":
            continue
        try:
            # Without an `alg`, PyJWK takes the one its type and curve imply (RSA: RS256, EC P-256: ES256).
            key = jwt.PyJWK(jwk)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
        if JWKS_KEY_TYPES.get(key.algorithm_name) == (jwk.get("kty"), jwk.get("crv")):
            keys[jwk["kid"]] = key
    return keys


_jwks = None


def jwks_keys(config):
    """The JwksKeys of the configured JWKS, one per process (settings that name another source or cache
    time, as tests set them, start a new one)."""
    global _jwks
    if _jwks is None or (_jwks.source, _jwks.cache_seconds) != (config.jwt_jwks, config.jwks_cache_seconds):
        _jwks = JwksKeys(config.jwt_jwks, config.jwks_cache_seconds)
    return _jwks


def claim_problem(claim, value):
    """What breaks SPEC §10's rule for a token's `sub`, `email` or `name` claim, as the end of a sentence
    ("must be ..."), or None: one rule for verified tokens and for the console's development form."""
    if claim == "sub":
        if not is_valid_user_id(value):
            return f"must be 1 to {USER_ID_MAX_LENGTH} printable characters"
        if is_reserved_user_id(value):
            return f"names the platform or an API key ('{SYSTEM_ACTOR['id']}', '{KEY_ACTOR_PREFIX}…'), never a user"
    elif claim == "email":
        if canonical_email(value) is None:
            return "is not a valid email address, or is written with compatibility characters (such as the " \
                   "Kelvin sign for a K)"
    elif not is_printable_text(value) or len(value) > NAME_MAX_LENGTH:
        return f"must be at most {NAME_MAX_LENGTH} printable characters"
    elif name_problem(value.strip()) is not None:
        return "must contain a visible character (not only combining marks or blanks)"
    return None


def identity_from_claims(claims):
    """The Identity that verified claims name (SPEC §10), or Unauthenticated invalid_token."""
    # PyJWT compares int(exp), so it lets "4102444800" (a string) through; a number is required.
    if isinstance(claims["exp"], bool) or not isinstance(claims["exp"], (int, float)):
        raise _invalid_claim("exp", "must be a number")
    # A token that never expires (exp 10**30) is a password that cannot be changed: its life is bounded.
    max_age = settings().jwt_max_token_age
    if claims["exp"] - time.time() > max_age + EXP_LEEWAY_SECONDS:
        raise _invalid_claim("exp", f"is more than {max_age / 3600:g} h away (JWT_MAX_TOKEN_AGE)")
    name = claims.get("name")
    values = {"sub": claims["sub"], "email": claims["email"], "name": "" if name is None else name}
    for claim, value in values.items():
        problem = claim_problem(claim, value)
        if problem is not None:
            raise _invalid_claim(claim, problem)
    return Identity(values["sub"], canonical_email(values["email"]), values["name"].strip())


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
