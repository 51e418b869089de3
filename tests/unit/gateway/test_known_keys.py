"""The gateway's keeping of API keys (gateway.known_keys): what members answered about a key id is kept a
minute, and the gateway checks the secret itself, in the same steps whether the id is a key's or no key's
and whether the secret is right; a revoked key is refused at once and stays refused even if members'
answer about it arrives after the revocation."""
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import eventlet
import pytest

from common.auth import api_key_secret_hash
from common.errors import AppError, ServiceUnavailable
from gateway import authentication
from gateway.known_keys import KEEP_SECONDS, KnownKeys, key_id_of
from tests.unit.clock import Clock

HASH_KEY = "gateway-test-hash-key"
KEY = "opk_0123456789ab_s3cret-part"
FACTS = {"id": "0123456789ab", "found": True, "organization_id": "org-1", "name": "Runtime",
         "scopes": ["usage:write"], "expires_at": None, "status": "active",
         "secret_hash": api_key_secret_hash("s3cret-part", HASH_KEY)}
UNKNOWN = "opk_ffffffffffff_s3cret-part"


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def keys(clock):
    return KnownKeys(HASH_KEY, clock)


def test_a_key_members_knows_is_checked_here_for_a_minute(keys, clock):
    assert keys.find(KEY) == (None, None)                     # never seen: members must be asked
    identity, refusal = keys.remember(KEY, FACTS)
    assert refusal is None and identity.id == "key:0123456789ab" and identity.is_key
    assert identity.key_scopes == ("usage:write",) and identity.as_actor() == {"id": "key:0123456789ab",
                                                                                 "name": "Runtime"}
    assert keys.find(KEY) == (identity, None)
    clock.now += KEEP_SECONDS + 1
    assert keys.find(KEY) == (None, None)                     # asked again after the minute


def test_a_wrong_secret_and_an_unknown_id_are_one_refusal_from_memory(keys):
    """Members' answer for a wrong secret is the key's (it does not say the secret was wrong), so the right
    secret still works afterwards: nobody can lock a key out by sending wrong ones."""
    assert keys.remember(KEY[:-1] + "X", FACTS) == (None, "invalid_api_key")
    assert keys.find(KEY[:-2] + "YY") == (None, "invalid_api_key")
    assert keys.find(KEY)[0].id == "key:0123456789ab"
    assert keys.remember(UNKNOWN, {"id": "ffffffffffff", "found": False}) == (None, "invalid_api_key")
    assert keys.find(UNKNOWN) == (None, "invalid_api_key")       # kept: members is not asked again
    assert keys.find("opk_ffffffffffff_" + "s" * 43) == (None, "invalid_api_key")


def test_the_same_steps_whatever_is_kept(keys, monkeypatch):
    """One hash and one constant-time comparison for a kept key's id and for an unknown id alike."""
    keys.remember(KEY, FACTS)
    keys.remember(UNKNOWN, {"id": "ffffffffffff", "found": False})
    steps = []
    monkeypatch.setattr("gateway.known_keys.api_key_secret_hash", lambda *a: steps.append("hash") or "0" * 64)
    monkeypatch.setattr("gateway.known_keys.hmac.compare_digest", lambda a, b: steps.append("compare") or False)
    for key in (KEY[:-1] + "X", UNKNOWN):
        steps.clear()
        assert keys.find(key) == (None, "invalid_api_key")
        assert steps == ["hash", "compare"]


def test_a_revoked_key_is_refused_and_a_late_answer_does_not_bring_it_back(keys):
    keys.remember(KEY, FACTS)
    keys.forget(FACTS["id"])
    assert keys.find(KEY) == (None, "api_key_revoked")
    assert keys.remember(KEY, FACTS) == (None, "api_key_revoked")   # an answer given before the revocation
    assert keys.find(KEY[:-1] + "X") == (None, "invalid_api_key")   # a wrong secret says no more than that


@pytest.mark.parametrize("facts, code", [
    (dict(FACTS, expires_at=(datetime.now(UTC) - timedelta(seconds=1)).isoformat()), "api_key_expired"),
    (dict(FACTS, status="expired"), "api_key_expired"), (dict(FACTS, status="revoked"), "api_key_revoked")])
def test_revoked_and_expired_keys_are_refused_by_name(keys, facts, code):
    assert keys.remember(KEY, facts) == (None, code)
    assert keys.find(KEY) == (None, code)


@pytest.mark.parametrize("text", ["opk_", "opk_abc", "opk__secret", "opk_abc_", "jwt.like.text", "opk_" + "a" * 300])
def test_what_is_not_shaped_like_a_key_has_no_id(text):
    assert key_id_of(text) is None


def request_with(header):
    return SimpleNamespace(headers={"Authorization": header} if header else {}, environ={})


@pytest.mark.parametrize("header", ["Bearer opk_", "Bearer opk_abc", "bearer opk_abc_", "Bearer opk_a_b\x01c"])
def test_a_malformed_key_is_refused_before_anyone_is_asked(header):
    request = request_with(header)
    with pytest.raises(authentication.Unauthenticated) as refused:
        authentication.context_data(request)
    assert refused.value.code == "invalid_api_key" and request.environ == {}


@pytest.mark.parametrize("header, code", [("Bearer eyJhbGciOi.x.y", "invalid_token"), (None, "missing_token")])
def test_a_jwt_is_not_taken_for_a_key(header, code):
    with pytest.raises(authentication.Unauthenticated) as refused:
        authentication.context_data(request_with(header))
    assert refused.value.code == code


def test_a_well_formed_key_not_seen_yet_is_left_for_the_worker_to_verify(fresh_keys):
    request = request_with(f"Bearer {KEY}")
    assert authentication.context_data(request) == {}
    assert request.environ == {authentication.KEY_TO_VERIFY: (KEY, "-")}


class SlowMembers:
    """members.authenticate_api_key as common.rpc.call uses a proxy's method: answering after a moment (or
    refusing), counting the calls."""

    def __init__(self, refusal=None):
        self.calls, self.refusal = 0, refusal
        self.authenticate_api_key = SimpleNamespace(service_name="members", call_async=self._call_async)

    def _call_async(self, key):
        self.calls += 1
        return SimpleNamespace(result=self._result)

    def _result(self):
        eventlet.sleep(0.05)
        if self.refusal:
            raise self.refusal
        return self.answer


@pytest.fixture
def fresh_keys(monkeypatch):
    monkeypatch.setattr(authentication, "known_keys", KnownKeys(HASH_KEY))


@pytest.mark.parametrize("answer, refusal", [(FACTS, None), (dict(FACTS, status="revoked"), None),
                                             (FACTS, ServiceUnavailable("The members service did not answer."))])
def test_requests_bringing_one_new_key_at_once_ask_members_once(fresh_keys, answer, refusal):
    members = SlowMembers(refusal)
    members.answer = answer
    service = SimpleNamespace(members=members)

    def verify(_):
        try:
            return authentication.verified_key(service, KEY).id
        except AppError as exc:
            return exc.code

    answers = list(eventlet.GreenPool(20).imap(verify, range(20)))
    assert members.calls == 1 and authentication._asking == {}
    expected = refusal.code if refusal else "key:0123456789ab" if answer["status"] == "active" else "api_key_revoked"
    assert set(answers) == {expected}
    # What members said is kept; that it could not answer is not.
    identity, remembered_refusal = authentication.known_keys.find(KEY)
    if refusal is not None:
        assert (identity, remembered_refusal) == (None, None)
    else:
        assert (identity.id if identity else remembered_refusal) == expected
