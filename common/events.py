"""Change events: one envelope for every service, one topic exchange, the queues that consume it.

Envelope (ARCHITECTURE.md "Events and the audit trail"):
    event_id, type ("organization.renamed"), action (create|update|delete), occurred_at (ISO UTC),
    organization_id, actor ({"id", "email"}, an API key's {"id": "key:<id>", "name"}, or {"id": "system"}),
    target ({"type", "id"}),
    before, after (only the changed fields; secrets never included), correlation_id (optional),
    request_id (optional: the HTTP request that made the change, common.request_ids, so a reaction's log
    lines can name it),
    traceparent, tracestate (optional: the W3C trace context of the span that made the change, e.g. the
    RPC call's, common.tracing; the outbox relay's publication span is its child, and each reaction's
    span the publication's),
    state (optional: the whole current state of the memberships or agents the change touched, with
    their versions, for other services' read models; see common.readmodels)

Every service publishes to the `change-events` exchange with the event type as routing key. Each
consumer has one durable queue bound to it, declared as common.queues says (classic, or quorum with a
delivery limit and the dead-letter queue behind it). The relay declares those queues (and the dead
letters' exchange and queue) before it publishes, so an event is never dropped for lack of a bound queue,
even if the consumer has never started.
"""
import logging
import uuid

from kombu import Exchange, Queue, binding
from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

from common import event_types as types
from common import request_ids, tracing
from common.queues import durable_queue
from common.timeutil import iso, parse_iso, utcnow

log = logging.getLogger(__name__)

CHANGE_EXCHANGE = Exchange("change-events", type="topic", durable=True)

# The audit service stores every change event.
AUDIT_QUEUE = durable_queue("audit.change-events", exchange=CHANGE_EXCHANGE, routing_key="#")
# Every queue below that feeds a read model (common.readmodels) binds the events that carry its state.
# The members service forgets the memberships of a deleted organization, and keeps which budget group
# each member is in (fed by credits), organizations and agents (fed by orgs): its read models. Its own
# invitation events call for the invitation's email (services/members/emails.py).
MEMBERS_QUEUE = durable_queue("members.change-events", exchange=CHANGE_EXCHANGE, bindings=[
    binding(CHANGE_EXCHANGE, routing_key=key)
    for key in (*types.ORGANIZATION_STATE_CARRIERS, *types.BUDGET_GROUP_MEMBER_STATE_CARRIERS,
                *types.AGENT_STATE_CARRIERS, types.INVITATION_CREATED, types.INVITATION_RESENT)
])
# The orgs service moves a member who left or was removed back to their Individual organization and
# takes away their access to agents (also a contributor's, on losing Builder); it assigns an accepted
# invitation's agents.
# Orgs also keeps the memberships it decides on (its read model).
ORGS_QUEUE = durable_queue("orgs.change-events", exchange=CHANGE_EXCHANGE, bindings=[
    binding(CHANGE_EXCHANGE, routing_key=key) for key in types.MEMBERSHIP_STATE_CARRIERS
])
# The credits service takes a member who left or was removed out of their budget group, and keeps the
# memberships and agents' access a spend is decided on, and organizations' names (its read models).
CREDITS_QUEUE = durable_queue("credits.change-events", exchange=CHANGE_EXCHANGE, bindings=[
    binding(CHANGE_EXCHANGE, routing_key=key)
    for key in (*types.MEMBERSHIP_STATE_CARRIERS, *types.ORGANIZATION_STATE_CARRIERS, *types.AGENT_STATE_CARRIERS,
                types.AUTO_TOPUP_UPDATED, types.AUTO_TOPUP_FAILED, types.AUTO_TOPUP_CAP_REACHED,
                types.AUTO_TOPUP_DISABLED)
])
# The billing service keeps the memberships it decides who may pay on (its read model), and hears of the spends
# that leave the balance at or below the auto top-up threshold (credits.balance_low: it tops up then).
BILLING_QUEUE = durable_queue("billing.change-events", exchange=CHANGE_EXCHANGE, bindings=[
    binding(CHANGE_EXCHANGE, routing_key=key)
    for key in (*types.MEMBERSHIP_STATE_CARRIERS, types.ORGANIZATION_DELETED, types.CREDITS_BALANCE_LOW)
])
# The webhooks service delivers every change event an endpoint subscribes to (SPEC §12), and keeps the
# memberships it decides who may manage endpoints on (its read model).
WEBHOOKS_QUEUE = durable_queue("webhooks.change-events", exchange=CHANGE_EXCHANGE, routing_key="#")
CONSUMER_QUEUES = (AUDIT_QUEUE, MEMBERS_QUEUE, ORGS_QUEUE, CREDITS_QUEUE, BILLING_QUEUE, WEBHOOKS_QUEUE)


def key_revocations_queue():
    """A queue of one gateway process's own for api_key.revoked (gateway.known_keys): every process must
    see every revocation, so each binds a queue named for itself. Not durable, and gone a minute after its
    process stopped consuming (x-expires), so dead processes leave nothing behind. A new one (a new name) after
    each reconnection of its process (common.framework.replies: the old one may have died with its broker
    node), when the process forgets the keys it kept, as a revocation sent meanwhile may be lost."""
    return Queue(f"gateway.api-key-revocations.{uuid.uuid4().hex[:12]}", exchange=CHANGE_EXCHANGE,
                 routing_key=types.API_KEY_REVOKED, durable=False, queue_arguments={"x-expires": 60_000})

ACTIONS = ("create", "update", "delete")


def change_event(type, action, organization_id, actor, target_type, target_id,
                 before=None, after=None, correlation_id=None, occurred_at=None, state=None):
    """Build one change event envelope (a plain dict, ready for JSON)."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
    return {
        "event_id": str(uuid.uuid4()),
        "type": type,
        "action": action,
        "occurred_at": iso(occurred_at or utcnow()),
        "organization_id": organization_id,
        "actor": dict(actor),
        "target": {"type": target_type, "id": target_id},
        "before": before or {},
        "after": after or {},
        "correlation_id": correlation_id,
        **({"state": state} if state else {}),
        **({"request_id": request_id} if (request_id := request_ids.current()) else {}),
        **_trace_context(),
    }


def _trace_context():
    """The envelope's `traceparent` (and `tracestate`): the span the worker making the change serves."""
    context = tracing.current()
    if context is None:
        return {}
    return {"traceparent": context.traceparent, **({"tracestate": context.state} if context.state else {})}


class ActorSchema(Schema):
    id = fields.String(required=True)
    email = fields.String(load_default=None)
    name = fields.String(load_default=None)     # an API key's (common.auth.Identity.as_actor)


class TargetSchema(Schema):
    type = fields.String(required=True)
    id = fields.String(required=True)


class ChangeEventSchema(Schema):
    """What a consumer accepts as a change event (extra keys are kept, for forward compatibility)."""
    class Meta:
        unknown = INCLUDE

    event_id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Length(min=3, max=100))
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS))
    occurred_at = fields.String(required=True)   # checked by the consumer when parsed
    organization_id = fields.String(load_default=None, allow_none=True)
    actor = fields.Nested(ActorSchema, required=True)
    target = fields.Nested(TargetSchema, required=True)
    before = fields.Dict(load_default=dict)
    after = fields.Dict(load_default=dict)
    correlation_id = fields.String(load_default=None, allow_none=True)
    state = fields.Dict(load_default=dict)


_change_event_schema = ChangeEventSchema()


class InvalidChangeEvent(ValueError):
    """A message that is not a change event: retrying it cannot help (consumers log and drop it)."""


def parse_change_event(message):
    """A received message as a checked change event (`occurred_at` parsed, `event_id` a string)."""
    try:
        event = _change_event_schema.load(message)
        event["occurred_at"] = parse_iso(event["occurred_at"])
    except (ValidationError, ValueError, TypeError) as exc:
        raise InvalidChangeEvent(f"not a change event ({exc}): {message!r}")
    event["event_id"] = str(event["event_id"])
    return event


def change_event_or_none(message):
    """The checked change event in a consumed message, or None for a message that is not one (logged:
    retrying cannot help, so consumers acknowledge and drop it instead of requeueing it forever)."""
    try:
        return parse_change_event(message)
    except InvalidChangeEvent:
        log.error("dropping a message that is not a change event", exc_info=True)
        return None


def stored_changes(event):
    """The event's changed fields as the audit trail stores (and hashes) them: `before`'s fields, then
    `after`'s new ones, each with its old and new value."""
    before, after = event["before"], event["after"]
    return [{"field": field, "old_value": before.get(field), "new_value": after.get(field)}
            for field in [*before, *(k for k in after if k not in before)]]


def entry_of(event):
    """A checked change event (parse_change_event) as the audit trail shows its entry, without its place in
    the hash chain: what audit hashes (services/audit/trail.py) and what a webhook delivers as `data`."""
    actor = event["actor"]
    return {"event_id": event["event_id"], "type": event["type"], "entity_type": event["target"]["type"],
            "entity_id": event["target"]["id"], "action": event["action"],
            "actor": {"id": actor["id"], **({"email": actor["email"]} if actor.get("email") else {}),
                      **({"name": actor["name"]} if actor.get("name") else {})},
            "organization_id": event["organization_id"], "correlation_id": event["correlation_id"],
            "occurred_at": iso(event["occurred_at"]), "changes": stored_changes(event)}


def changed_fields(before, after):
    """Keep only the keys whose values differ: what `before`/`after` of an update event carry."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}
