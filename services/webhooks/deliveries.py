"""Deliveries (SPEC §12): stored when an event is acknowledged, sent outside any transaction, retried on a
schedule of rows, never by sleeping workers.

- The reaction to a change event (reactions.py, the one rule of common.inbox) stores one pending delivery
  per enabled endpoint of the event's organization that subscribes to its type, in the transaction that
  records the event as handled: an acknowledged event always has its deliveries, a redelivered one none
  more. The body is fixed then: `{"type", "timestamp", "data"}`, `data` the audit entry's shape.
- The job finds the endpoints with deliveries due and gives each up to two lanes (dispatcher.py); a lane
  claims the endpoint's next due delivery (PostgreSQL: FOR UPDATE SKIP LOCKED, so replicas share them;
  the claim moves `next_attempt_at` past the time a send can take, so a process that dies mid-send leaves
  the row to be sent again later: at least once), sends it (sender.py), records the attempt, and goes on
  with the next.
- A 2xx is delivered. 410 Gone disables the endpoint. Anything else (no answer, a timeout, a refused
  address, another status) is tried again after RETRY_SCHEDULE's next delay, with jitter, or later when
  the receiver's Retry-After says so; after the last one it has failed. An endpoint whose attempts all
  failed for 5 days (from its first failure after a success) is disabled, audited as the system's act
  with the reason.
- By hand: a delivery sent again, a test message sent to an endpoint; the delivery log lists each
  delivery with its attempts, for LOG_RETENTION after it ended (an hourly job forgets older ones).
"""
import json
import random
import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from common.auth import SYSTEM_ACTOR
from common.errors import Conflict, NotFound
from common.events import entry_of
from common.paging import Keyset, desc, keyset_page
from common.timeutil import as_utc, iso, utcnow
from services.webhooks import endpoints
from services.webhooks.models import Attempt, Delivery, Endpoint

TEST_TYPE = "webhook.test"
RETRY_SCHEDULE = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                  timedelta(hours=5), timedelta(hours=10), timedelta(hours=10))
JITTER = 0.1                        # each delay is moved by up to ±10 %
LONGEST_RETRY_AFTER = timedelta(hours=24)
ATTEMPTS_LISTED = 20                # the last attempts shown per delivery in the log
LOG_RETENTION = timedelta(days=30)  # how long an ended delivery stays in the log
NEWEST_FIRST = Keyset("webhook_deliveries", desc("created_at", Delivery.created_at, datetime),
                      desc("id", Delivery.id, str))


def body_of(event):
    return json.dumps({"type": event["type"], "timestamp": iso(event["occurred_at"]), "data": entry_of(event)},
                      separators=(",", ":"), ensure_ascii=False)


def subscribes(endpoint, event_type):
    return "*" in endpoint.event_types or event_type in endpoint.event_types


def store_for_event(session, event, now=None):
    """The reaction to a change event: its deliveries, one per enabled endpoint subscribed to its type."""
    organization_id = event.get("organization_id")
    if not organization_id:
        return 0
    now = now or utcnow()
    live = session.scalars(select(Endpoint).where(Endpoint.organization_id == organization_id,
                                                  Endpoint.enabled.is_(True), Endpoint.deleted_at.is_(None))).all()
    targets = [endpoint for endpoint in live if subscribes(endpoint, event["type"])]
    if targets:
        body = body_of(event)
        session.add_all(Delivery(id=str(uuid.uuid4()), endpoint_id=endpoint.id, organization_id=organization_id,
                                 message_id=event["event_id"], event_type=event["type"], body=body, status="pending",
                                 attempts=0, created_at=now, next_attempt_at=now)
                        for endpoint in targets)
    return len(targets)


# ---- the job ----------------------------------------------------------------------------------------------
def due_endpoints(store, now, limit=100):
    """Endpoints with a delivery due now, the longest waiting first."""
    with store.read() as session:
        rows = session.execute(select(Delivery.endpoint_id, func.min(Delivery.next_attempt_at))
                               .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
                               .group_by(Delivery.endpoint_id).order_by(func.min(Delivery.next_attempt_at))
                               .limit(limit)).all()
        return [row[0] for row in rows]


def claim_next(store, endpoint_id, now, claim_for):
    """The endpoint's next due delivery, claimed for `claim_for` (on PostgreSQL, one another process is
    claiming is skipped): (delivery id, url, signing secrets, message id, body), or None when none is due
    or the endpoint may not be sent to any more (its due deliveries then end as failed)."""
    due = (select(Delivery).where(Delivery.endpoint_id == endpoint_id, Delivery.status == "pending",
                                  Delivery.next_attempt_at <= now)
           .order_by(Delivery.next_attempt_at).limit(1).with_for_update(skip_locked=True))
    with store.write() as session:
        row = session.scalars(due).first()
        if row is None:
            return None
        endpoint = session.get(Endpoint, endpoint_id)
        if endpoint is None or not endpoint.enabled or endpoint.deleted_at is not None:
            endpoints.end_pending(session, endpoint_id, "the endpoint is disabled or deleted", now)
            return None
        row.next_attempt_at = now + claim_for
        return row.id, endpoint.url, endpoints.signing_secrets(endpoint, now), row.message_id, row.body


def retry_delay(attempts, retry_after=None, scale=1.0):
    """The wait before the next try after `attempts` failed ones, or None when none is left."""
    if attempts > len(RETRY_SCHEDULE):
        return None
    delay = RETRY_SCHEDULE[attempts - 1] * scale * (1 + random.uniform(-JITTER, JITTER))
    if retry_after is not None:
        delay = max(delay, min(retry_after, LONGEST_RETRY_AFTER))
    return delay


def record(store, delivery_id, outcome, settings, now=None):
    """The attempt's outcome (sender.Outcome) written down, and what follows from it; returns the
    delivery's status."""
    now = now or utcnow()
    with store.write() as session:
        delivery = session.get(Delivery, delivery_id, with_for_update=True)
        endpoint = session.get(Endpoint, delivery.endpoint_id, with_for_update=True)
        session.add(Attempt(delivery_id=delivery_id, attempted_at=now, status_code=outcome.status_code,
                            duration_ms=outcome.duration_ms, error=(outcome.error or None) and outcome.error[:500]))
        delivery.attempts += 1
        delivery.last_status_code, delivery.last_error = outcome.status_code, outcome.error or None
        if delivery.status != "pending":        # ended meanwhile (the endpoint deleted or disabled)
            return delivery.status
        if outcome.delivered:
            delivery.status, delivery.ended_at = "delivered", now
            endpoint.failing_since = None
            return "delivered"
        if outcome.status_code == 410:
            delivery.status, delivery.ended_at = "failed", now
            endpoints.disable(session, SYSTEM_ACTOR, endpoint, "the receiver answered 410 Gone", now)
            return "failed"
        endpoint.failing_since = endpoint.failing_since or now
        if now - as_utc(endpoint.failing_since) >= timedelta(seconds=settings.disable_after_seconds):
            delivery.status, delivery.ended_at = "failed", now
            days = settings.disable_after_seconds / 86400
            endpoints.disable(session, SYSTEM_ACTOR, endpoint,
                              f"every delivery attempt failed for {days:g} day(s)", now)
            return "failed"
        delay = retry_delay(delivery.attempts, outcome.retry_after, settings.retry_scale)
        if delay is None:
            delivery.status, delivery.ended_at = "failed", now
            return "failed"
        delivery.next_attempt_at = now + delay
        return "pending"


def prune_ended(store, now=None, keep=LOG_RETENTION, batch=1000):
    """Forget deliveries that ended more than `keep` ago, with their attempts (the log keeps 30 days);
    returns how many went."""
    now = now or utcnow()
    with store.write() as session:
        ids = session.scalars(select(Delivery.id).where(Delivery.status != "pending", Delivery.ended_at < now - keep)
                              .limit(batch)).all()
        if ids:
            session.execute(delete(Attempt).where(Attempt.delivery_id.in_(ids)))
            session.execute(delete(Delivery).where(Delivery.id.in_(ids)))
        return len(ids)


# ---- by hand ------------------------------------------------------------------------------------------------
def _enabled_endpoint(session, organization_id, endpoint_id):
    endpoint = endpoints.live_endpoint(session, organization_id, endpoint_id, lock=True)
    if not endpoint.enabled:
        raise Conflict("The endpoint is disabled; enable it first.", code="endpoint_disabled",
                       field="endpoint_id", details={"disabled_reason": endpoint.disabled_reason})
    return endpoint


def retry(session, organization_id, endpoint_id, delivery_id, now=None):
    """Send a delivery again now, whatever became of it (delivered, failed, or waiting for its next try)."""
    now = now or utcnow()
    _enabled_endpoint(session, organization_id, endpoint_id)
    delivery = session.get(Delivery, delivery_id) if isinstance(delivery_id, str) else None
    if delivery is None or delivery.endpoint_id != endpoint_id:
        raise NotFound("There is no such delivery for this endpoint.", code="delivery_not_found",
                       field="delivery_id")
    delivery.status, delivery.next_attempt_at, delivery.ended_at = "pending", now, None
    return delivery_dict(delivery, [])


def send_test(session, organization_id, endpoint_id, now=None):
    """A test message for the endpoint, sent now like any delivery (its webhook-id starts with msg_test_)."""
    now = now or utcnow()
    endpoint = _enabled_endpoint(session, organization_id, endpoint_id)
    message_id = f"msg_test_{uuid.uuid4().hex}"
    body = json.dumps({"type": TEST_TYPE, "timestamp": iso(now),
                       "data": {"organization_id": organization_id, "endpoint_id": endpoint.id,
                                "message": "A test message: this endpoint receives the organization's events."}},
                      separators=(",", ":"))
    delivery = Delivery(id=str(uuid.uuid4()), endpoint_id=endpoint.id, organization_id=organization_id,
                        message_id=message_id, event_type=TEST_TYPE, body=body, status="pending", attempts=0,
                        created_at=now, next_attempt_at=now)
    session.add(delivery)
    return delivery_dict(delivery, [])


# ---- the delivery log --------------------------------------------------------------------------------------
def attempt_dict(attempt):
    return {"attempted_at": iso(attempt.attempted_at), "status_code": attempt.status_code,
            "duration_ms": attempt.duration_ms, "error": attempt.error}


def delivery_dict(delivery, attempts):
    return {"id": delivery.id, "endpoint_id": delivery.endpoint_id, "message_id": delivery.message_id,
            "event_type": delivery.event_type, "status": delivery.status, "attempt_count": delivery.attempts,
            "created_at": iso(delivery.created_at),
            "next_attempt_at": iso(delivery.next_attempt_at) if delivery.status == "pending" else None,
            "ended_at": iso(delivery.ended_at) if delivery.ended_at else None,
            "last_status_code": delivery.last_status_code, "last_error": delivery.last_error,
            "attempts": [attempt_dict(a) for a in attempts]}


def log_page(store, organization_id, endpoint_id, status=None, cursor=None, limit=None):
    """The endpoint's deliveries, newest first, each with its last attempts (newest first)."""
    with store.read() as session:
        endpoints.live_endpoint(session, organization_id, endpoint_id)
        query = select(Delivery).where(Delivery.endpoint_id == endpoint_id)
        if status is not None:
            query = query.where(Delivery.status == status)
        answer = keyset_page(session, query, NEWEST_FIRST, cursor, limit, dump=lambda row: row)
        ids = [row.id for row in answer["items"]]
        attempts = {}
        if ids:
            for attempt in session.scalars(select(Attempt).where(Attempt.delivery_id.in_(ids))
                                           .order_by(Attempt.attempted_at.desc(), Attempt.id.desc())):
                listed = attempts.setdefault(attempt.delivery_id, [])
                if len(listed) < ATTEMPTS_LISTED:
                    listed.append(attempt)
        return dict(answer, items=[delivery_dict(row, attempts.get(row.id, [])) for row in answer["items"]])
