"""Alerts about auto top-up (SPEC §11), beside the budget alerts (alerts.py) in the same list: the billing
service's events raise them, each once (common.inbox) and once per its key (the alerts' unique key):
- `auto_topup_failed`: a top-up's charge failed (one per transaction);
- `auto_topup_cap_reached`: the monthly cap stopped a top-up (once a calendar month);
- `auto_topup_disabled`: three failures in a row switched auto top-up off (one per switch).
Their threshold, value and limit are null; `transaction_id` names the failed top-up."""
import uuid

from common.auth import SYSTEM_ACTOR
from common.event_types import AUTO_TOPUP_CAP_REACHED, AUTO_TOPUP_DISABLED, AUTO_TOPUP_FAILED, CREDITS_ALERT_RAISED
from common.timeutil import as_utc, parse_iso
from services.credits.alerts import EVENT_FIELDS, RAISE_ALERT, alert_dict
from services.credits.events import emit

KIND_OF = {AUTO_TOPUP_FAILED: "auto_topup_failed", AUTO_TOPUP_CAP_REACHED: "auto_topup_cap_reached",
           AUTO_TOPUP_DISABLED: "auto_topup_disabled"}
TOPUP_KINDS = tuple(KIND_OF.values())


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
