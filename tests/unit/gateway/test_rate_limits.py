"""The gateway's rate limits (gateway/rate_limits.py): refused credentials per client address and per API
key id, then 429 with Retry-After; a right credential still works; downloads per organization; the client
address behind a trusted proxy."""
from ipaddress import ip_network
from types import SimpleNamespace

import pytest

from common.auth import api_key_secret_hash
from common.config import RateLimitSettings, settings
from common.errors import TooManyRequests, Unauthenticated
from gateway import authentication
from gateway.known_keys import KnownKeys
from gateway.rate_limits import RateLimits

HASH_KEY = settings().api_key_hash_secret
KEY_ID, SECRET = "0123456789ab", "s3cret-part"
KEY = f"opk_{KEY_ID}_{SECRET}"
FACTS = {"id": KEY_ID, "found": True, "organization_id": "org-1", "name": "Runtime", "scopes": ["usage:write"],
         "expires_at": None, "status": "active", "secret_hash": api_key_secret_hash(SECRET, HASH_KEY)}


def limits(per_address="5/minute", per_key="3/minute", exports="2/minute", proxies=()):
    return RateLimits(RateLimitSettings(per_address, per_key, exports, tuple(ip_network(p) for p in proxies)))


@pytest.fixture
def gateway(monkeypatch):
    """authentication's collaborators, fresh: a key kept (as if members had been asked) and small limits."""
    keys, rate_limits = KnownKeys(HASH_KEY), limits()
    keys.remember(KEY, FACTS)
    monkeypatch.setattr(authentication, "known_keys", keys)
    monkeypatch.setattr(authentication, "rate_limits", rate_limits)
    return rate_limits


def request(token, address="203.0.113.7"):
    return SimpleNamespace(headers={"Authorization": f"Bearer {token}"}, environ={"REMOTE_ADDR": address})


def refusal(token, address="203.0.113.7"):
    with pytest.raises((Unauthenticated, TooManyRequests)) as refused:
        authentication.context_data(request(token, address))
    return refused.value.status, refused.value.code


def test_wrong_secrets_for_one_key_id_get_429_and_the_right_key_still_works(gateway):
    codes = [refusal(f"opk_{KEY_ID}_wrong{n}", f"198.51.100.{n}") for n in range(5)]
    assert codes == [(401, "invalid_api_key")] * 3 + [(429, "too_many_failures")] * 2
    with pytest.raises(TooManyRequests) as refused:
        authentication.context_data(request(f"opk_{KEY_ID}_wrong", "198.51.100.99"))
    assert 1 <= refused.value.details["retry_after"] <= 60
    assert authentication.context_data(request(KEY, "192.0.2.1"))      # its holder is not locked out


def test_an_address_past_its_failures_gets_429_for_every_guess_and_asks_members_nothing(gateway):
    for n in range(5):
        assert refusal(f"eyJ.bad.token{n}")[0] == 401
    assert refusal("eyJ.bad.token") == (429, "too_many_failures")
    assert refusal("opk_ffffffffffff_guess") == (429, "too_many_failures")    # an id it would have to ask about
    assert refusal("eyJ.bad.token", "192.0.2.1")[0] == 401                       # another address: counted apart
    assert authentication.context_data(request(KEY))                               # a right credential works


def test_a_missing_token_is_no_guess(gateway):
    for _ in range(10):
        with pytest.raises(Unauthenticated) as refused:
            authentication.context_data(SimpleNamespace(headers={}, environ={"REMOTE_ADDR": "203.0.113.7"}))
        assert refused.value.code == "missing_token"


def test_downloads_are_counted_per_organization():
    rate_limits = limits()
    rate_limits.count_export("org-1")
    rate_limits.count_export("org-1")
    with pytest.raises(TooManyRequests) as refused:
        rate_limits.count_export("org-1")
    assert refused.value.code == "too_many_exports" and "At most 2 downloads per minute" in refused.value.message
    rate_limits.count_export("org-2")


def test_the_client_address_behind_a_trusted_proxy():
    direct, proxied = limits(), limits(proxies=["10.0.0.0/8"])
    forwarded = {"REMOTE_ADDR": "10.1.2.3", "HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.9, 10.0.0.7"}
    assert direct.client_address(forwarded) == "10.1.2.3"          # no proxy trusted: the header is anyone's
    assert proxied.client_address(forwarded) == "203.0.113.9"      # the last hop the trusted proxies saw
    assert proxied.client_address({"REMOTE_ADDR": "203.0.113.5", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}) == "203.0.113.5"


def test_limits_are_read_and_checked_from_the_environment():
    from common.config import ConfigError
    read = settings({"RATE_LIMIT_AUTH_FAILURES_PER_KEY": "5 per hour"}).rate_limits
    assert read.auth_failures_per_key == "5 per hour"
    for name, value in (("RATE_LIMIT_EXPORTS_PER_ORGANIZATION", "lots"), ("TRUSTED_PROXIES", "proxy.local")):
        with pytest.raises(ConfigError, match=name):
            settings({name: value})
