"""Guessing is bounded (issue 25; gateway/rate_limits.py), end to end: 100 wrong secrets for one key id
from one address get 401 up to the limit (20 a minute per key id) and 429 with Retry-After after it;
the key's holder, from another address, is not locked out; another tenant meanwhile is served as before
(its p99 before and during, printed). Downloads of one organization are limited the same way. The test
system counts failures per key id as in production; its per-address limit is raised, since every other
test comes from 127.0.0.1 (tests/unit/gateway/test_rate_limits.py covers that limit)."""
import statistics
import threading
import time

import requests
from requests.adapters import HTTPAdapter

from tests.e2e.helpers import create_organization, error_code, ok, path
from tests.e2e.test_api_keys import new_key


def from_address(address, token):
    """A client whose connections leave from `address` (any 127.x.y.z is this machine's loopback)."""
    class SourceAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            kwargs["source_address"] = (address, 0)
            super().init_poolmanager(*args, **kwargs)
    session = requests.Session()
    session.mount("http://", SourceAdapter())
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def p99_ms(durations):
    return statistics.quantiles(durations, n=100)[98] * 1000


def test_wrong_secrets_for_a_key_id_end_in_429_and_its_holder_still_gets_in(system, figure):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    key = new_key(owner, org, ["usage:read"], "Runtime")["key"]
    key_id = key.split("_")[1]
    credits = f"{system.url}{path(org, '/credits')}"
    other = system.user("tenant")
    other_org = create_organization(other)["id"]

    def other_tenant(durations, stop):
        while not stop.is_set():
            started = time.perf_counter()
            ok(other.get(path(other_org, "/credits")))
            durations.append(time.perf_counter() - started)

    before, during, stop = [], [], threading.Event()
    for _ in range(100):
        started = time.perf_counter()
        ok(other.get(path(other_org, "/credits")))
        before.append(time.perf_counter() - started)
    watcher = threading.Thread(target=other_tenant, args=(during, stop))
    watcher.start()
    try:
        answers = [from_address("127.0.0.2", f"opk_{key_id}_wrong-secret-{n}").get(credits, timeout=30)
                   for n in range(100)]
    finally:
        stop.set()
        watcher.join()
    statuses = [answer.status_code for answer in answers]
    assert statuses == [401] * 20 + [429] * 80, statuses
    assert {error_code(answer, 429) for answer in answers[20:]} == {"too_many_failures"}
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
    assert answers[-1].json()["error"]["details"]["retry_after"] == int(answers[-1].headers["Retry-After"])
    # The key's holder, from another address: served.
    assert from_address("127.0.0.3", key).get(credits, timeout=30).status_code == 200
    figure(f"another tenant's p99 before {p99_ms(before):.1f} ms, during 100 wrong secrets for one key id "
           f"{p99_ms(during):.1f} ms ({len(during)} requests)")


def test_downloads_of_one_organization_are_limited(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    downloads = [owner.get(path(org, "/members"), params={"format": "csv"}) for _ in range(11)]
    assert [d.status_code for d in downloads] == [200] * 10 + [429]
    assert error_code(downloads[-1], 429) == "too_many_exports" and int(downloads[-1].headers["Retry-After"]) >= 1
    # A stranger's refused download uses none of them; another organization has its own.
    stranger = system.user("stranger")
    assert stranger.get(path(org, "/audit"), params={"format": "csv"}).status_code == 404
    elsewhere = create_organization(owner)["id"]
    assert owner.get(path(elsewhere, "/members"), params={"format": "csv"}).status_code == 200
