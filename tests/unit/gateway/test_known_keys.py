"""The gateway's memory of API keys (gateway.known_keys): a key members accepted is used for a minute
without asking again, a revoked one is forgotten at once and stays forgotten even if members' answer
about it arrives after the revocation, a refused one is refused from memory for a few seconds."""
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import eventlet
import pytest

from common.errors import AppError, ServiceUnavailable, Unauthenticated
from gateway import authentication
from gateway.known_keys import KEEP_SECONDS, REFUSAL_KEEP_SECONDS, KnownKeys, key_id_of
from tests.unit.clock import Clock

KEY = "opk_0123456789ab_s3cret-part"
FACTS = {"id": "0123456789ab", "organization_id": "org-1", "name": "Runtime", "scopes": ["usage:write"],
         "expires_at": None}


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def keys(clock):
    return KnownKeys(clock)


def test_a_key_members_accepted_is_the_key_identity_for_a_minute(keys, clock):
    assert keys.find(KEY) == (None, None)                     # never seen: members must be asked
    identity = keys.remember(KEY, FACTS)
    assert identity.id == "key:0123456789ab" and identity.is_key and identity.key_scopes == ("usage:write",)
    assert identity.as_actor() == {"id": "key:0123456789ab", "name": "Runtime"}
    assert keys.find(KEY) == (identity, None)
    clock.now += KEEP_SECONDS + 1
    assert keys.find(KEY) == (None, None)                     # asked again after the minute


def test_the_id_of_a_known_key_with_another_secret_is_refused_without_asking(keys):
    keys.remember(KEY, FACTS)
    assert keys.find(KEY[:-1] + "X") == (None, "invalid_api_key")


def test_a_revoked_key_is_forgotten_and_a_late_answer_does_not_bring_it_back(keys):
    keys.remember(KEY, FACTS)
    keys.forget(FACTS["id"])
    assert keys.find(KEY) == (None, None)
    keys.remember(KEY, FACTS)         # members' answer, given before the revocation, arriving after it
    assert keys.find(KEY) == (None, None)


def test_a_key_that_expires_while_kept_is_refused(keys):
    soon = dict(FACTS, expires_at=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    keys.remember(KEY, soon)
    assert keys.find(KEY) == (None, "api_key_expired")


def test_a_refusal_is_remembered_a_few_seconds(keys, clock):
    keys.refuse(KEY, "api_key_revoked")
    assert keys.find(KEY) == (None, "api_key_revoked")
    clock.now += REFUSAL_KEEP_SECONDS + 0.1
    assert keys.find(KEY) == (None, None)


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
    assert request.environ == {authentication.KEY_TO_VERIFY: KEY}


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
        return dict(FACTS)


@pytest.fixture
def fresh_keys(monkeypatch):
    monkeypatch.setattr(authentication, "known_keys", KnownKeys())


@pytest.mark.parametrize("refusal", [None, Unauthenticated("The API key was revoked.", code="api_key_revoked"),
                                     ServiceUnavailable("The members service did not answer.")])
def test_requests_bringing_one_new_key_at_once_ask_members_once(fresh_keys, refusal):
    members = SlowMembers(refusal)
    service = SimpleNamespace(members=members)

    def verify(_):
        try:
            return authentication.verified_key(service, KEY).id
        except AppError as exc:
            return exc.code

    answers = list(eventlet.GreenPool(20).imap(verify, range(20)))
    assert members.calls == 1 and authentication._asking == {}
    assert set(answers) == {"key:0123456789ab" if refusal is None else refusal.code}
    # What members said is kept (the key, or its refusal for a few seconds); that it could not answer is not.
    identity, remembered_refusal = authentication.known_keys.find(KEY)
    if refusal is None:
        assert identity.id == "key:0123456789ab"
    elif refusal.code == "api_key_revoked":
        assert remembered_refusal == "api_key_revoked"
    else:
        assert (identity, remembered_refusal) == (None, None)
