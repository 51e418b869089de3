"""An organization's webhook endpoints (SPEC §12; Owner/Admin, decided by the pipeline): at most
MAX_ENDPOINTS, each with a URL checked for where it points (egress.py), the event types it subscribes to
(or "*"), a description and whether it is enabled; its signing secret shown once at creation and at each
rotation, the previous one still signing for ROTATION_OVERLAP. Every change is audited; the secret never
is. Deleting marks the endpoint deleted (its delivery log stays readable to the end of its retention) and
ends its pending deliveries.
"""
import base64
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from common.errors import Conflict, NotFound, ValidationFailed
from common.paging import Keyset, asc, desc, keyset_page
from common.timeutil import as_utc, iso, utcnow
from services.webhooks import egress
from services.webhooks.events import (
    WEBHOOK_ENDPOINT_CREATED,
    WEBHOOK_ENDPOINT_DELETED,
    WEBHOOK_ENDPOINT_DISABLED,
    WEBHOOK_ENDPOINT_SECRET_ROTATED,
    WEBHOOK_ENDPOINT_UPDATED,
    emit,
)
from services.webhooks.models import Delivery, Endpoint

MAX_ENDPOINTS = 10
ROTATION_OVERLAP = timedelta(hours=24)
SECRET_BYTES = 32
SECRET_PREFIX = "whsec_"
NEWEST_FIRST = Keyset("webhook_endpoints", desc("created_at", Endpoint.created_at, datetime), asc("id", Endpoint.id))
AUDITED_FIELDS = ("url", "event_types", "description", "enabled")


def new_secret():
    """`whsec_` and 32 random bytes in base64: the form Standard Webhooks libraries take."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def endpoint_dict(endpoint, now=None):
    """An endpoint as answered: never its secret."""
    now = now or utcnow()
    overlap = endpoint.previous_secret_expires_at
    return {"id": endpoint.id, "organization_id": endpoint.organization_id, "url": endpoint.url,
            "event_types": endpoint.event_types, "description": endpoint.description, "enabled": endpoint.enabled,
            "disabled_reason": endpoint.disabled_reason, "created_by": endpoint.created_by,
            "created_at": iso(endpoint.created_at), "updated_at": iso(endpoint.updated_at),
            "previous_secret_expires_at": iso(overlap) if overlap and as_utc(overlap) > now else None,
            "failing_since": iso(endpoint.failing_since) if endpoint.failing_since else None}


def endpoint_not_found():
    return NotFound("There is no such webhook endpoint in this organization.", code="webhook_endpoint_not_found",
                    field="endpoint_id")


def check_url(url, allow_private):
    """422 naming `url` when it may not be sent to (egress.py says why)."""
    try:
        return egress.check_url(url, allow_private)
    except egress.EgressRefused as refused:
        raise ValidationFailed(str(refused), code=refused.code, field="url") from None


def subscribed_types(event_types):
    """["*"] alone when "*" is listed; else the types, each once, in the order given."""
    return ["*"] if "*" in event_types else list(dict.fromkeys(event_types))


def _snapshot(endpoint):
    return {field: getattr(endpoint, field) for field in AUDITED_FIELDS}


def create(session, identity, organization_id, url, event_types, description, enabled, allow_private, now=None):
    """A new endpoint; the answer carries its `secret`, this once."""
    now = now or utcnow()
    check_url(url, allow_private)
    count = session.scalar(select(func.count()).select_from(Endpoint).where(
        Endpoint.organization_id == organization_id, Endpoint.deleted_at.is_(None)))
    if count >= MAX_ENDPOINTS:
        raise Conflict(f"An organization has at most {MAX_ENDPOINTS} webhook endpoints; delete one first.",
                       code="too_many_endpoints", details={"limit": MAX_ENDPOINTS})
    endpoint = Endpoint(id=str(uuid.uuid4()), organization_id=organization_id, url=url,
                        event_types=subscribed_types(event_types), description=description, enabled=enabled,
                        secret=new_secret(), created_by=identity.id, created_at=now, updated_at=now)
    session.add(endpoint)
    session.flush()
    emit(session, WEBHOOK_ENDPOINT_CREATED, "create", organization_id, identity, "webhook_endpoint", endpoint.id,
         after=_snapshot(endpoint))
    return dict(endpoint_dict(endpoint, now), secret=endpoint.secret)


def live_endpoint(session, organization_id, endpoint_id, lock=False):
    endpoint = session.get(Endpoint, endpoint_id, with_for_update=lock) if isinstance(endpoint_id, str) else None
    if endpoint is None or endpoint.organization_id != organization_id or endpoint.deleted_at is not None:
        raise endpoint_not_found()
    return endpoint


def get(store, organization_id, endpoint_id):
    with store.read() as session:
        return endpoint_dict(live_endpoint(session, organization_id, endpoint_id))


def page(store, organization_id, cursor=None, limit=None):
    with store.read() as session:
        query = select(Endpoint).where(Endpoint.organization_id == organization_id, Endpoint.deleted_at.is_(None))
        return keyset_page(session, query, NEWEST_FIRST, cursor, limit, dump=endpoint_dict)


def update_endpoint(session, identity, organization_id, endpoint_id, changes, allow_private, now=None):
    """Change the fields given (as the contract loaded them, partially). Enabling a disabled endpoint
    clears why it was disabled and its failure streak."""
    now = now or utcnow()
    endpoint = live_endpoint(session, organization_id, endpoint_id, lock=True)
    if "url" in changes:
        check_url(changes["url"], allow_private)
    if "event_types" in changes:
        changes = dict(changes, event_types=subscribed_types(changes["event_types"]))
    before = _snapshot(endpoint)
    for field, value in changes.items():
        setattr(endpoint, field, value)
    if changes.get("enabled") is True and not before["enabled"]:
        endpoint.disabled_reason, endpoint.failing_since = None, None
    after = _snapshot(endpoint)
    changed = [field for field in AUDITED_FIELDS if before[field] != after[field]]
    if changed:
        endpoint.updated_at = now
        emit(session, WEBHOOK_ENDPOINT_UPDATED, "update", organization_id, identity, "webhook_endpoint",
             endpoint.id, before={f: before[f] for f in changed}, after={f: after[f] for f in changed})
    return endpoint_dict(endpoint, now)


def delete(session, identity, organization_id, endpoint_id, now=None):
    """The endpoint is gone for its organization; its pending deliveries end as failed."""
    now = now or utcnow()
    endpoint = live_endpoint(session, organization_id, endpoint_id, lock=True)
    before = _snapshot(endpoint)
    endpoint.deleted_at, endpoint.enabled = now, False
    end_pending(session, endpoint.id, "the endpoint was deleted", now)
    emit(session, WEBHOOK_ENDPOINT_DELETED, "delete", organization_id, identity, "webhook_endpoint", endpoint.id,
         before=before)
    return {"id": endpoint.id, "deleted": True}


def rotate_secret(session, identity, organization_id, endpoint_id, now=None):
    """A new secret, answered this once; the current one keeps signing (beside it) for ROTATION_OVERLAP."""
    now = now or utcnow()
    endpoint = live_endpoint(session, organization_id, endpoint_id, lock=True)
    endpoint.previous_secret, endpoint.previous_secret_expires_at = endpoint.secret, now + ROTATION_OVERLAP
    endpoint.secret, endpoint.updated_at = new_secret(), now
    emit(session, WEBHOOK_ENDPOINT_SECRET_ROTATED, "update", organization_id, identity, "webhook_endpoint",
         endpoint.id, after={"previous_secret_expires_at": iso(endpoint.previous_secret_expires_at)})
    return dict(endpoint_dict(endpoint, now), secret=endpoint.secret)


def signing_secrets(endpoint, now):
    """The secrets a delivery is signed with now: the current one, and the previous one during its overlap."""
    overlap = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and overlap is not None and as_utc(overlap) > now:
        return [endpoint.secret, endpoint.previous_secret]
    return [endpoint.secret]


def disable(session, system_actor, endpoint, reason, now):
    """Disabled by the system (410 Gone, or failing for days): audited with the reason; pending deliveries end."""
    if not endpoint.enabled:
        return
    endpoint.enabled, endpoint.disabled_reason, endpoint.updated_at = False, reason, now
    end_pending(session, endpoint.id, f"the endpoint was disabled: {reason}", now)
    emit(session, WEBHOOK_ENDPOINT_DISABLED, "update", endpoint.organization_id, system_actor, "webhook_endpoint",
         endpoint.id, before={"enabled": True}, after={"enabled": False, "reason": reason})


def end_pending(session, endpoint_id, why, now):
    session.execute(update(Delivery).where(Delivery.endpoint_id == endpoint_id, Delivery.status == "pending")
                    .values(status="failed", ended_at=now, last_error=why[:500]))
