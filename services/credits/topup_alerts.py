"""Alerts about auto top-up (SPEC §11), beside the budget alerts (alerts.py) in the same list: the billing
service's events raise them, each once (common.inbox) and once per its key (the alerts' unique key):
- `auto_topup_failed`: a top-up's charge failed (one per transaction);
- `auto_topup_cap_reached`: the monthly cap stopped a top-up (once a calendar month);
- `auto_topup_disabled`: three failures in a row switched auto top-up off (one per switch).
Their threshold, value and limit are null; `transaction_id` names the failed top-up."""
import uuid

from common.auth import SYSTEM_ACTOR
from common.event_types import (
    AUTO_TOPUP_CAP_REACHED,
    AUTO_TOPUP_DISABLED,
    AUTO_TOPUP_FAILED,
    AUTO_TOPUP_STATE,
    AUTO_TOPUP_UPDATED,
    CREDITS_ALERT_RAISED,
)
from common.money import parse_amount
from common.sql import conflict_insert
from common.timeutil import as_utc, parse_iso
from services.credits.alerts import EVENT_FIELDS, RAISE_ALERT, alert_dict
from services.credits.events import emit
from services.credits.models import AlertSettings

KIND_OF = {AUTO_TOPUP_FAILED: "auto_topup_failed", AUTO_TOPUP_CAP_REACHED: "auto_topup_cap_reached",
           AUTO_TOPUP_DISABLED: "auto_topup_disabled"}
TOPUP_KINDS = tuple(KIND_OF.values())
TOPUP_EVENTS = (*KIND_OF, AUTO_TOPUP_UPDATED)


def raise_topup_alert(session, event):
    """The alert an auto top-up event raises (in the reaction's transaction), with its audited event."""
    kind = KIND_OF[event["type"]]
    at = event["occurred_at"]
    at = parse_iso(at) if isinstance(at, str) else as_utc(at)
    after = event.get("after") or {}
    transaction_id = after.get("transaction_id") or ""
    # What makes each alert one: the failed transaction, the month (its period), the switch (the event).
    key = {"auto_topup_failed": transaction_id, "auto_topup_cap_reached": "",
           "auto_topup_disabled": event["event_id"]}[kind]
    alert = {"id": str(uuid.uuid4()), "organization_id": event["organization_id"], "period": at.strftime("%Y-%m"),
             "kind": kind, "user_id": key, "threshold": 0, "value": 0, "limit_amount": 0,
             "spend_id": transaction_id, "raised_at": at}
    connection = session.connection()
    if connection.execute(RAISE_ALERT[connection.dialect.name], alert).first() is None:
        return None
    shown = alert_dict(alert)
    emit(session, CREDITS_ALERT_RAISED, "create", event["organization_id"], SYSTEM_ACTOR, "alert", alert["id"],
         after={k: shown[k] for k in EVENT_FIELDS}, occurred_at=at)
    return shown


def apply_topup_settings(session, event):
    """Billing's auto top-up settings changed (auto_topup.updated, auto_topup.disabled): keep the threshold
    while it is on, beside the alert settings every spend reads already, so a spend says when it leaves the
    balance at or below it (credits.balance_low) and billing hears of no other spend. A change older than
    the one kept changes nothing."""
    at = event["occurred_at"]
    at = parse_iso(at) if isinstance(at, str) else as_utc(at)
    for state in (event.get("state") or {}).get(AUTO_TOPUP_STATE) or []:
        if state.get("organization_id") != event["organization_id"]:
            continue
        session.execute(conflict_insert(session)(AlertSettings).values(
            organization_id=event["organization_id"], member_budget_percents=[], balance_floor=None,
            updated_by=SYSTEM_ACTOR["id"], updated_at=at).on_conflict_do_nothing())
        row = session.get(AlertSettings, event["organization_id"], with_for_update=True, populate_existing=True)
        if row.topup_as_of is not None and as_utc(row.topup_as_of) >= at:
            continue
        row.topup_threshold = parse_amount(state["threshold"], allow_zero=True) if state.get("enabled") else None
        row.topup_as_of = at


def on_topup_event(session, event):
    apply_topup_settings(session, event)
    if event["type"] in KIND_OF:
        raise_topup_alert(session, event)
