"""Every event type named in common.event_types is emitted by exactly one service (its events.py),
and the consumer queues bind only names from there."""
from collections import Counter

from common import event_types
from common.events import CONSUMER_QUEUES
from services.audit import events as audit
from services.billing import events as billing
from services.credits import events as credits
from services.members import events as members
from services.orgs import events as orgs
from services.webhooks import events as webhooks

NAMED = {value for name, value in vars(event_types).items()
         if name.isupper() and isinstance(value, str)
         and name not in ("BALANCE_STATE", "AUTO_TOPUP_STATE")}    # a state's key, no type


def test_each_type_is_emitted_by_exactly_one_service():
    emitted = Counter([*orgs.EMITS, *members.EMITS, *credits.EMITS, *billing.EMITS, *audit.EMITS,
                       *webhooks.EMITS])
    assert set(emitted) == NAMED
    assert [t for t, count in emitted.items() if count > 1] == []


def test_consumers_bind_named_types():
    keys = {b.routing_key for q in CONSUMER_QUEUES for b in (q.bindings or [])} | \
           {q.routing_key for q in CONSUMER_QUEUES if q.routing_key}
    assert keys - {"#"} <= NAMED
