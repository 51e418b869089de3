"""Bounds on guessing and on heavy downloads, at the gateway (the `limits` package, moving windows).

- Authentication failures (a refused token or key; a missing one is no guess), per client address
  (RATE_LIMIT_AUTH_FAILURES_PER_ADDRESS, 60/minute) and per API key id (RATE_LIMIT_AUTH_FAILURES_PER_KEY,
  20/minute). Past either, a credential that fails is answered 429 `too_many_failures` with Retry-After
  instead of 401, and a key the gateway would have to ask members about is answered 429 without asking.
  A credential the gateway checks itself and finds right still works: a valid token, or the right secret
  of a key whose id it keeps (gateway.known_keys). So the holder of a key whose id someone is guessing on
  is not locked out, and the guesser gets nothing but 429s.
- Downloads (members' CSV, the audit trail), per organization (RATE_LIMIT_EXPORTS_PER_ORGANIZATION,
  10/minute): 429 `too_many_exports`.

The client address is the connection's peer, or, when the peer is one of TRUSTED_PROXIES, the last
address of X-Forwarded-For that is not a trusted proxy.

Counts are kept in memory, per gateway process: with N gateway processes behind a balancer a client may
get up to N times a limit through before every process refuses it (still bounded; a shared store such
as Redis is what `limits` offers when that matters).
"""
import math
import time
from ipaddress import ip_address

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from common.config import settings
from common.errors import TooManyRequests

TOO_MANY_FAILURES = "Too many failed sign-ins; try again later."


class RateLimits:
    def __init__(self, config):
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_address = parse(config.auth_failures_per_address)
        self.per_key = parse(config.auth_failures_per_key)
        self.exports = parse(config.exports_per_organization)
        self.trusted_proxies = config.trusted_proxies

    def client_address(self, environ):
        peer = environ.get("REMOTE_ADDR") or "-"
        if not self.trusted_proxies or not self._trusted(peer):
            return peer
        forwarded = [part.strip() for part in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        for address in reversed(forwarded):
            if not self._trusted(address):
                return address
        return peer

    def _trusted(self, address):
        try:
            parsed = ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self.trusted_proxies)

    def check_not_blocked(self, address, key_id=None):
        """Before asking members about a key: 429 when its address or id is past its failures."""
        for limit, who in ((self.per_address, address), (self.per_key, key_id)):
            if who is not None and not self._limiter.test(limit, _key("auth", who)):
                raise self._refusal(limit, _key("auth", who), "too_many_failures", TOO_MANY_FAILURES)

    def failed(self, refusal, address, key_id=None):
        """Count a refused credential; returns the error to raise: `refusal` (a 401), or a 429 once past a
        limit."""
        past = None
        for limit, who in ((self.per_address, address), (self.per_key, key_id)):
            if who is not None and not self._limiter.hit(limit, _key("auth", who)):
                past = past or (limit, _key("auth", who))
        if past is None:
            return refusal
        return self._refusal(*past, "too_many_failures", TOO_MANY_FAILURES)

    def count_export(self, organization_id):
        if not self._limiter.hit(self.exports, _key("export", organization_id)):
            raise self._refusal(self.exports, _key("export", organization_id), "too_many_exports",
                                f"At most {self.exports.amount} downloads per {_per(self.exports)} per "
                                f"organization; try again later.")

    def _refusal(self, limit, key, code, message):
        reset_at, _ = self._limiter.get_window_stats(limit, key)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        return TooManyRequests(message, code=code, details={"retry_after": retry_after})


def _key(kind, who):
    return f"{kind}:{who}"


def _per(limit):
    return f"{limit.multiples} {limit.GRANULARITY.name}s" if limit.multiples > 1 else limit.GRANULARITY.name


# One per gateway process.
rate_limits = RateLimits(settings().rate_limits)
