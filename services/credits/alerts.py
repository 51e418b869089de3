"""Budget alerts (issue 15): an organization's alert settings, the thresholds a spend crosses, and the
alerts raised.

Settings: `member_budget_percents`, 0 to 5 distinct whole percents of a member's monthly limit (from
their budget group: members without a limit never cross), and `balance_floor`, an amount or none.
A member threshold p is crossed by the spend that takes the member's usage this month from below
limit * p / 100 to at least it; the floor by the spend that takes the balance from above it to at or
below it. One spend may cross several thresholds (80 % and 100 % at once): each is an alert.

Once per period: a crossing is a row of `alerts`, unique on (organization, month, kind, member or '',
threshold), inserted with INSERT ... ON CONFLICT DO NOTHING in the spend's transaction, and its event
`credits.alert_raised` (audited) is emitted only when the row went in. Spends of one organization run one
after the other under the account lock (ledger.py, "Concurrency"), so only one of them sees a usage or
balance step over a threshold; the unique key makes a second event impossible anyway: a replica, a
threshold crossed again within the month after a limit was changed or credit added. A refused spend
rolls back, alert included.

The spend is the hot path (spends.py): an organization without settings costs it one primary-key SELECT
(`settings_of`, read phase) and nothing under the lock; with settings, the crossings are decided from
numbers the spend already has, so only a crossing costs statements (an INSERT, and an outbox row when it
went in). Those statements are built once.
"""
import uuid
from collections import namedtuple

from sqlalchemy import bindparam, select

from common.auth import SYSTEM_ACTOR
from common.events import changed_fields
from common.money import format_amount
from common.paging import Keyset, desc, keyset_page
from common.sql import DIALECT_INSERTS, conflict_insert
from common.timeutil import iso, utcnow
from services.credits.allowances import period_of
from services.credits.events import ALERT_SETTINGS_UPDATED, CREDITS_ALERT_RAISED, emit
from services.credits.models import Alert, AlertSettings

MEMBER_BUDGET, BALANCE_FLOOR = "member_budget", "balance_floor"     # the kinds of alert
ALERTS, SETTINGS = Alert.__table__, AlertSettings.__table__
NEWEST_FIRST = Keyset("alerts", desc("seq", Alert.seq, int))

# What a spend needs of the settings: the percents (ascending) and the floor in units (or None).
Thresholds = namedtuple("Thresholds", "member_budget_percents balance_floor topup_threshold", defaults=(None,))


# ---- settings ---------------------------------------------------------------------------------------
def _shown(fields):
    """Setting values as answers and events show them (the floor as an amount string)."""
    return {k: format_amount(v) if k == "balance_floor" else v for k, v in fields.items()}


def settings_dict(organization_id, row):
    """The settings as answered; an organization that never set any has none (no alerts)."""
    if row is None:
        return {"organization_id": organization_id, "member_budget_percents": [], "balance_floor": None,
                "updated_by": None, "updated_at": None}
    return {"organization_id": organization_id, "member_budget_percents": list(row.member_budget_percents),
            "balance_floor": format_amount(row.balance_floor), "updated_by": row.updated_by,
            "updated_at": iso(row.updated_at)}


def get_settings(store, organization_id):
    with store.read() as session:
        return settings_dict(organization_id, session.get(AlertSettings, organization_id))


def set_settings(session, identity, organization_id, member_budget_percents, balance_floor, now=None):
    """Replace the organization's settings (as the declared contract, common.contracts.alerts, loaded them:
    the floor in units or None); one `alert_settings.updated` event with what changed (none when nothing
    did). The row is created on first use and locked, so two changes at once are audited one after the
    other, each with the `before` the other left."""
    now = now or utcnow()
    percents, floor = sorted(member_budget_percents), balance_floor
    session.execute(conflict_insert(session)(AlertSettings).values(
        organization_id=organization_id, member_budget_percents=[], balance_floor=None,
        updated_by=identity.id, updated_at=now).on_conflict_do_nothing())
    row = session.get(AlertSettings, organization_id, with_for_update=True, populate_existing=True)
    before, after = changed_fields(
        {"member_budget_percents": list(row.member_budget_percents), "balance_floor": row.balance_floor},
        {"member_budget_percents": percents, "balance_floor": floor})
    if after:
        row.member_budget_percents, row.balance_floor = percents, floor
        row.updated_by, row.updated_at = identity.id, now
        emit(session, ALERT_SETTINGS_UPDATED, "update", organization_id, identity, "alert_settings",
             organization_id, before=_shown(before), after=_shown(after), occurred_at=now)
    return settings_dict(organization_id, row)


# ---- in the spend -----------------------------------------------------------------------------------
def settings_of(session, organization_id):
    """The organization's Thresholds, or None when it set none (then the spend skips alerts)."""
    return thresholds_of(session.execute(SETTINGS_OF, {"org": organization_id}).first())


def thresholds_of(row):
    """Thresholds from a row of settings (member_budget_percents, balance_floor, topup_threshold), or None."""
    if row is None or (not row.member_budget_percents and row.balance_floor is None and row.topup_threshold is None):
        return None
    return Thresholds(tuple(row.member_budget_percents), row.balance_floor, row.topup_threshold)


def crossings(thresholds, monthly_limit, used, balance):
    """The thresholds a spend crossed, as (kind, threshold, value after, limit or floor). `used` and
    `balance` are (before, after) the spend; `monthly_limit` is the member's (None: no limit).
    Compared in whole units times 100, so that a percent of a limit is never rounded."""
    found = []
    if monthly_limit is not None:
        for percent in thresholds.member_budget_percents:
            if used[0] * 100 < monthly_limit * percent <= used[1] * 100:
                found.append((MEMBER_BUDGET, percent, used[1], monthly_limit))
    floor = thresholds.balance_floor
    if floor is not None and balance[0] > floor >= balance[1]:
        found.append((BALANCE_FLOOR, floor, balance[1], floor))
    return found


def planned(thresholds, organization_id, user_id, monthly_limit, used, balance, spend_id, now):
    """The alerts a spend would raise (see `crossings`), each as (its row, its event's `after`), not written:
    the spend writes a row and, only if it went in (not raised before this period), its event."""
    planned = []
    for kind, threshold, value, limit in crossings(thresholds, monthly_limit, used, balance):
        alert = {"id": str(uuid.uuid4()), "organization_id": organization_id, "period": period_of(now),
                 "kind": kind, "user_id": user_id if kind == MEMBER_BUDGET else "", "threshold": threshold,
                 "value": value, "limit_amount": limit, "spend_id": spend_id, "raised_at": now}
        shown = alert_dict(alert)
        planned.append((alert, {k: shown[k] for k in EVENT_FIELDS}))
    return planned


def record_crossings(session, connection, thresholds, organization_id, user_id, monthly_limit, used, balance,
                     spend_id, now):
    """Raise an alert for each threshold the spend crossed (see `crossings`), in the spend's transaction:
    its row and, only if the row went in (not raised before this period), its audited event. Returns
    the alerts raised."""
    raised = []
    for alert, after in planned(thresholds, organization_id, user_id, monthly_limit, used, balance, spend_id, now):
        if not insert_alert(connection, alert):
            continue                    # raised already this period: no second event
        emit(session, CREDITS_ALERT_RAISED, "create", organization_id, SYSTEM_ACTOR, "alert", alert["id"],
             after=after, occurred_at=now)
        raised.append(alert_dict(alert))
    return raised


def insert_alert(connection, alert):
    """Insert the alert's row unless its crossing was raised this period; True if it went in."""
    return connection.execute(RAISE_ALERT[connection.dialect.name], alert).first() is not None


# ---- the alerts raised --------------------------------------------------------------------------------
EVENT_FIELDS = ("kind", "threshold", "user_id", "period", "value", "limit", "spend_id")


def alert_dict(alert):
    """An alert as answered (a row or the dict inserted). `threshold` is a string for both kinds: a
    percent ("80") or the floor as an amount ("5.0000"); `value` the usage or balance after the spend,
    `limit` the member's monthly limit or the floor."""
    get = alert.get if isinstance(alert, dict) else lambda name: getattr(alert, name)
    kind = get("kind")
    if kind.startswith("auto_topup_"):         # topup_alerts.py: no threshold, value or limit
        return {"id": get("id"), "organization_id": get("organization_id"), "kind": kind, "threshold": None,
                "user_id": None, "period": get("period"), "value": None, "limit": None,
                "spend_id": None, "transaction_id": get("spend_id") or None, "raised_at": iso(get("raised_at"))}
    return {"id": get("id"), "organization_id": get("organization_id"), "kind": kind,
            "threshold": str(get("threshold")) if kind == MEMBER_BUDGET else format_amount(get("threshold")),
            "user_id": get("user_id") or None, "period": get("period"), "value": format_amount(get("value")),
            "limit": format_amount(get("limit_amount")), "spend_id": get("spend_id"),
            "raised_at": iso(get("raised_at"))}


def list_alerts(store, organization_id, cursor=None, limit=None):
    """The alerts raised, newest first, keyset-paged."""
    with store.read() as session:
        return keyset_page(session, select(Alert).where(Alert.organization_id == organization_id), NEWEST_FIRST,
                           cursor, limit, dump=alert_dict)


# ---- statements the spend runs, built once (spends.py says why) ----------------------------------------
SETTINGS_OF = select(SETTINGS.c.member_budget_percents, SETTINGS.c.balance_floor, SETTINGS.c.topup_threshold).where(
    SETTINGS.c.organization_id == bindparam("org"))


def _raise_alert_statement(insert):
    """Insert the alert (its columns from the parameters, as ADD_ENTRY in spends.py) unless its crossing was
    raised this period; returns its id only if inserted."""
    return (insert(ALERTS)
            .on_conflict_do_nothing(index_elements=[ALERTS.c.organization_id, ALERTS.c.period, ALERTS.c.kind,
                                                    ALERTS.c.user_id, ALERTS.c.threshold])
            .returning(ALERTS.c.id))


RAISE_ALERT = {name: _raise_alert_statement(insert) for name, insert in DIALECT_INSERTS.items()}
