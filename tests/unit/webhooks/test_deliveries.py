"""Deliveries (services/webhooks/deliveries.py, dispatcher.py, sender.py) against a real receiver on
loopback: stored once per subscribed endpoint when the event is handled, signed per Standard Webhooks
(verified with the standardwebhooks library), retried on a schedule with the same webhook-id, 410
disabling, days of failures disabling, a rotation signing with both secrets, by-hand retries and tests."""
import json
import time
from datetime import timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from common.auth import SYSTEM_ACTOR, Identity
from common.config import WebhookSettings
from common.errors import Conflict, ValidationFailed
from common.events import change_event, parse_change_event
from common.timeutil import utcnow
from devtools.webhook_receiver import Receiver
from services.webhooks import deliveries, endpoints, reactions
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.models import Attempt, Delivery, Endpoint, OutboxEvent
from services.webhooks.sender import Outcome

ORG = "org-1"
DINA = Identity("dina", "dina@example.com", "Dina")
CONFIG = WebhookSettings(allow_private_networks=True, poll_seconds=0.05, timeout_seconds=2, concurrency=5,
                         disable_after_seconds=3600, retry_scale=1.0)


@pytest.fixture
def store(make_store):
    return make_store("webhooks")


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


def written(store, function, *args, **kwargs):
    with store.write() as session:
        return function(session, *args, **kwargs)


def new_endpoint(store, url, event_types=("*",), **fields):
    return written(store, endpoints.create, DINA, ORG, url, list(event_types), fields.get("description", ""),
                   fields.get("enabled", True), True)


def event(type="member.added", organization_id=ORG, **after):
    return parse_change_event(change_event(type, "create", organization_id, DINA.as_actor(), "member", "budi",
                                           after=after or {"roles": ["builder"]}))


def deliver(store, dispatcher, now=None):
    """Everything due (at `now`: the dispatcher's clock is set to it) sent and recorded; the lanes started."""
    if now is not None:
        dispatcher.clock = lambda: now
    started = dispatcher.run_due(store)
    dispatcher.wait()
    return started


def rows(store, model=Delivery):
    with store.read() as session:
        return session.query(model).all()


def test_an_event_reaches_each_subscribed_endpoint_once_signed_per_standard_webhooks(store, receiver):
    everything = new_endpoint(store, receiver.url)
    members_only = new_endpoint(store, receiver.url + "?members", ["member.added"])
    new_endpoint(store, receiver.url + "?agents", ["agent.created"])
    added = event()
    assert reactions.handle_change_events(store, [added, added]) == 1      # redelivered in the batch: once
    assert reactions.handle_change_events(store, [added]) == 0
    assert reactions.handle_change_events(store, [event(organization_id="org-2")]) == 1   # no endpoint there
    deliver(store, Dispatcher(CONFIG))
    assert len(receiver.received) == 2
    assert sorted(d.status for d in rows(store)) == ["delivered", "delivered"]
    secrets = {"/hook": everything["secret"], "/hook?members": members_only["secret"]}
    for headers, body in receiver.received:
        assert headers["webhook-id"] == added["event_id"]
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 30
        message = json.loads(body)
        assert message["type"] == "member.added" and message["timestamp"].endswith("Z")
        assert message["data"]["event_id"] == added["event_id"]
        assert message["data"]["changes"] == [{"field": "roles", "old_value": None, "new_value": ["builder"]}]
        assert message["data"]["actor"] == {"id": "dina", "email": "dina@example.com"}
    # Each endpoint's own secret verifies its delivery (the receiver saw the path), and no other secret does.
    verified = {path: Webhook(secrets[path]).verify(body, headers) for path, (headers, body)
                in zip(receiver.paths, receiver.received, strict=True)}
    assert set(verified) == {"/hook", "/hook?members"}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_endpoint(store, receiver.url)["secret"]).verify(receiver.received[0][1], receiver.received[0][0])


def test_500_twice_then_200_is_three_attempts_with_one_webhook_id(store, receiver):
    new_endpoint(store, receiver.url)
    receiver.script = [500, (503, {"Retry-After": "120"})]
    reactions.handle_change_events(store, [event()])
    dispatcher, now = Dispatcher(CONFIG), utcnow()
    deliver(store, dispatcher, now)
    [delivery] = rows(store)
    assert delivery.status == "pending" and delivery.attempts == 1 and delivery.last_status_code == 500
    wait = delivery.next_attempt_at.replace(tzinfo=None) - now.replace(tzinfo=None)
    assert timedelta(seconds=4.4) < wait < timedelta(seconds=5.6)          # 5 s, with up to 10 % jitter
    assert deliver(store, dispatcher, now + timedelta(seconds=3)) == 0       # not due yet
    deliver(store, dispatcher, now + timedelta(seconds=6))
    [delivery] = rows(store)
    wait = delivery.next_attempt_at.replace(tzinfo=None) - now.replace(tzinfo=None)
    assert wait > timedelta(minutes=4)          # 5 min (the receiver's Retry-After of 2 min is shorter)
    deliver(store, dispatcher, now + timedelta(minutes=6))
    [delivery] = rows(store)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)
    assert len({headers["webhook-id"] for headers, _ in receiver.received}) == 1 and len(receiver.received) == 3
    page = deliveries.log_page(store, ORG, delivery.endpoint_id)
    assert [a["status_code"] for a in page["items"][0]["attempts"]] == [200, 503, 500]


def test_retry_after_longer_than_the_schedule_is_honoured():
    assert deliveries.retry_delay(1, timedelta(minutes=10)) == timedelta(minutes=10)
    assert deliveries.retry_delay(1, timedelta(days=9)) == timedelta(hours=24)
    assert deliveries.retry_delay(len(deliveries.RETRY_SCHEDULE) + 1) is None


def test_410_disables_the_endpoint_audited_as_the_system(store, receiver):
    endpoint = new_endpoint(store, receiver.url)
    receiver.script = [410]
    reactions.handle_change_events(store, [event(), event()])
    deliver(store, Dispatcher(CONFIG))
    assert sorted(d.status for d in rows(store)) == ["failed", "failed"]
    with store.read() as session:
        stored = session.get(Endpoint, endpoint["id"])
        assert not stored.enabled and stored.disabled_reason == "the receiver answered 410 Gone"
        disabled = [e.envelope for e in session.query(OutboxEvent).all() if e.type == "webhook_endpoint.disabled"]
    assert len(disabled) == 1 and disabled[0]["actor"] == SYSTEM_ACTOR
    assert disabled[0]["after"] == {"enabled": False, "reason": "the receiver answered 410 Gone"}
    reactions.handle_change_events(store, [event()])          # a disabled endpoint gets nothing more
    assert len(rows(store)) == 2


def test_an_endpoint_failing_for_days_is_disabled_and_a_success_resets_the_streak(store, receiver):
    endpoint = new_endpoint(store, receiver.url)
    dispatcher, now = Dispatcher(CONFIG), utcnow()
    receiver.script = [500, 200]
    reactions.handle_change_events(store, [event(), event()])
    deliver(store, dispatcher, now)                   # 500 then 200: the streak is over
    with store.read() as session:
        assert session.get(Endpoint, endpoint["id"]).failing_since is None
    receiver.stop()                                    # down for good from now on
    reactions.handle_change_events(store, [event()])
    later = now + timedelta(seconds=10)
    for _ in range(12):
        deliver(store, dispatcher, later)
        later += timedelta(hours=11)
        with store.read() as session:
            if not session.get(Endpoint, endpoint["id"]).enabled:
                break
    with store.read() as session:
        stored = session.get(Endpoint, endpoint["id"])
    assert not stored.enabled and stored.disabled_reason == "every delivery attempt failed for 0.0416667 day(s)"


def test_a_rotation_signs_with_both_secrets_during_the_overlap(store, receiver):
    endpoint = new_endpoint(store, receiver.url)
    rotated = written(store, endpoints.rotate_secret, DINA, ORG, endpoint["id"])
    assert rotated["secret"] != endpoint["secret"] and rotated["previous_secret_expires_at"]
    reactions.handle_change_events(store, [event()])
    deliver(store, Dispatcher(CONFIG))
    [(headers, body)] = receiver.received
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["secret"], rotated["secret"]):          # a receiver holding either verifies
        assert Webhook(secret).verify(body, headers)["type"] == "member.added"
    with store.write() as session:
        session.get(Endpoint, endpoint["id"]).previous_secret_expires_at = utcnow() - timedelta(seconds=1)
    reactions.handle_change_events(store, [event()])
    deliver(store, Dispatcher(CONFIG))
    headers, body = receiver.received[-1]
    assert len(headers["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(body, headers)


def test_by_hand_a_delivery_again_and_a_test_message(store, receiver):
    endpoint = new_endpoint(store, receiver.url, ["agent.created"])
    test = written(store, deliveries.send_test, ORG, endpoint["id"])
    assert test["message_id"].startswith("msg_test_") and test["status"] == "pending"
    dispatcher = Dispatcher(CONFIG)
    deliver(store, dispatcher)
    assert receiver.verified(endpoint["secret"])[0]["type"] == "webhook.test"
    again = written(store, deliveries.retry, ORG, endpoint["id"], test["id"])
    assert again["status"] == "pending"
    deliver(store, dispatcher)
    assert [h["webhook-id"] for h, _ in receiver.received] == [test["message_id"]] * 2
    written(store, endpoints.update_endpoint, DINA, ORG, endpoint["id"], {"enabled": False}, True)
    with pytest.raises(Conflict) as refused:
        written(store, deliveries.send_test, ORG, endpoint["id"])
    assert refused.value.code == "endpoint_disabled"


def test_one_dead_receiver_holds_two_senders_at_most(store, receiver, monkeypatch):
    """Deliveries to a receiver that never answers take PER_ENDPOINT senders; the other endpoint's go."""
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(50)                   # accepts, never answers
    dead = new_endpoint(store, f"http://127.0.0.1:{silent.getsockname()[1]}/hook")
    alive = new_endpoint(store, receiver.url)
    reactions.handle_change_events(store, [event() for _ in range(10)])
    dispatcher = Dispatcher(CONFIG)
    assert dispatcher.run_due(store) == 4 and dispatcher.busy[dead["id"]] == 2
    deadline = time.monotonic() + 1.5
    while len(receiver.received) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    # All ten of the live one's delivered by its two lanes while the dead one's two still hang.
    assert len(receiver.received) == 10 and dispatcher.busy[dead["id"]] == 2
    dispatcher.wait()
    with store.read() as session:
        timed_out = session.query(Delivery).filter_by(endpoint_id=dead["id"], attempts=1).all()
    # A lane stops at a failure: one try each, the next tick tries again.
    assert len(timed_out) == 2 and timed_out[0].last_error == "no answer within 2 s"
    assert alive["id"] not in dispatcher.busy and dead["id"] not in dispatcher.busy
    silent.close()


def test_endpoint_rules(store, receiver):
    for _ in range(endpoints.MAX_ENDPOINTS):
        new_endpoint(store, receiver.url)
    with pytest.raises(Conflict) as refused:
        new_endpoint(store, receiver.url)
    assert refused.value.code == "too_many_endpoints"
    with pytest.raises(ValidationFailed) as refused:
        written(store, endpoints.create, DINA, "org-9", "https://127.0.0.1/x", ["*"], "", True, False)
    assert (refused.value.code, refused.value.field) == ("private_address", "url")
    assert endpoints.subscribed_types(["member.added", "*"]) == ["*"]
    assert endpoints.subscribed_types(["agent.created", "member.added", "agent.created"]) == ["agent.created",
                                                                                             "member.added"]


def test_the_recorded_outcome_of_a_deleted_endpoints_delivery_changes_nothing(store, receiver):
    endpoint = new_endpoint(store, receiver.url)
    reactions.handle_change_events(store, [event()])
    written(store, endpoints.delete, DINA, ORG, endpoint["id"])
    [delivery] = rows(store)
    assert delivery.status == "failed" and delivery.last_error == "the endpoint was deleted"
    assert deliveries.record(store, delivery.id, Outcome(200, 5), CONFIG) == "failed"


def test_the_log_forgets_deliveries_ended_more_than_30_days_ago(store, receiver):
    new_endpoint(store, receiver.url)
    reactions.handle_change_events(store, [event(), event()])
    deliver(store, Dispatcher(CONFIG))
    assert deliveries.prune_ended(store, utcnow() + timedelta(days=29)) == 0
    reactions.handle_change_events(store, [event()])            # pending: kept however old
    assert deliveries.prune_ended(store, utcnow() + timedelta(days=31)) == 2
    assert [d.status for d in rows(store)] == ["pending"] and rows(store, Attempt) == []
