"""Budget alerts (services/credits/alerts.py) on SQLite through the credits functions (run as the pipeline
runs them: tests/unit/credits/domain.py): the settings and their 422s (the entrypoint's declared input),
crossings at their boundaries, once per threshold, member and month (the unique key: a second insert emits
nothing), nothing for a refused spend, the statements a spend pays for alerts, and the entrypoints'
permissions (Owner/Admin/Billing; API keys read alerts with usage:read)."""
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select

from common.auth import Identity
from common.errors import Forbidden, PaymentRequired, ValidationFailed
from services.credits import alerts
from services.credits.models import Alert, OutboxEvent
from tests.unit.credits import domain
from tests.unit.credits.facts import ORG, credits_worker

T0 = datetime(2031, 3, 10, 12, 0, tzinfo=UTC)
AGENT = "agent-1"
OLGA = Identity("olga", "olga@example.com", "Olga")        # sets things up; spends uncapped by a group
BOB = Identity("bob", "bob@example.com", "Bob")            # in a group with a monthly limit


@pytest.fixture
def store(credits_store):
    return credits_store        # each test on SQLite and on PostgreSQL (the spend's two paths)


def units(amount):
    return round(amount * 10000)


_keys = iter(range(10 ** 9))


def spend(store, who, amount, now=T0):
    return domain.spend(store, who, ORG, AGENT, amount, f"key-{next(_keys)}", now=now)


def events(store, type_):
    with store.read() as session:
        return [e.envelope for e in session.scalars(select(OutboxEvent).where(OutboxEvent.type == type_)
                                                    .order_by(OutboxEvent.id))]


def alert_count(store):
    with store.read() as session:
        return session.scalar(select(func.count()).select_from(Alert))


def funded(store, amount="20", limit="10", percents=(80, 100), floor=None):
    """ORG with `amount` of credit, BOB in a group with a monthly `limit`, and alert settings."""
    domain.add_grant(store, OLGA, ORG, amount, "paid")
    group = domain.create_group(store, OLGA, ORG, {"name": "Team", "monthly_limit": limit})
    domain.assign_member(store, OLGA, ORG, group["id"], BOB.id)
    if percents or floor is not None:
        domain.set_alert_settings(store, OLGA, ORG, list(percents), floor)


# ---- crossings at their boundaries ----------------------------------------------------------------
LIMIT = units(10)
THRESHOLDS = alerts.Thresholds((80, 100), units(5))


@pytest.mark.parametrize("used, crossed", [
    ((units(7), units(7.9999)), []),                  # below 80 % after
    ((units(7), units(8)), [80]),                     # reaching it exactly is crossing it
    ((units(7.9999), units(8)), [80]),
    ((units(8), units(9)), []),                       # already at 80 % before: crossed by an earlier spend
    ((units(8.5), units(10)), [100]),
    ((0, units(10)), [80, 100]),                      # one spend, two thresholds
    ((units(10), units(11)), []),
])
def test_a_member_threshold_is_crossed_from_below_it_to_at_least_it(used, crossed):
    found = alerts.crossings(THRESHOLDS, LIMIT, used, (units(50), units(49)))
    assert [(kind, threshold) for kind, threshold, _, _ in found] == [("member_budget", p) for p in crossed]
    assert all(value == used[1] and limit == LIMIT for _, _, value, limit in found)


def test_a_percent_of_a_limit_is_never_rounded():
    tiny = alerts.Thresholds((50,), None)             # half of 3 units is 1.5 units
    assert alerts.crossings(tiny, 3, (0, 1), (9, 8)) == []
    assert alerts.crossings(tiny, 3, (1, 2), (9, 8)) == [("member_budget", 50, 2, 3)]


def test_members_without_a_limit_never_cross():
    assert alerts.crossings(THRESHOLDS, None, (0, units(1000)), (units(50), units(49))) == []


@pytest.mark.parametrize("balance, crossed", [
    ((units(5.0001), units(5)), True),                # reaching the floor is crossing it
    ((units(6), units(4)), True),
    ((units(5), units(4)), False),                    # at the floor before: crossed by an earlier spend
    ((units(7), units(5.0001)), False),
])
def test_the_balance_floor_is_crossed_from_above_it_to_at_or_below_it(balance, crossed):
    found = alerts.crossings(THRESHOLDS, None, (0, 1), balance)
    assert found == ([("balance_floor", units(5), balance[1], units(5))] if crossed else [])


# ---- through spends -------------------------------------------------------------------------------
def test_a_spend_that_crosses_raises_an_audited_alert_once(store):
    funded(store, percents=(80, 100))
    spend(store, BOB, "7")
    assert alert_count(store) == 0
    crossing = spend(store, BOB, "1.5")["spend"]
    [raised] = events(store, "credits.alert_raised")
    [alert] = alerts.list_alerts(store, ORG)["items"]
    assert (raised["action"], raised["actor"], raised["target"]) == ("create", {"id": "system"},
                                                                     {"type": "alert", "id": alert["id"]})
    assert raised["after"] == {"kind": "member_budget", "threshold": "80", "user_id": "bob", "period": "2031-03",
                               "value": "8.5000", "limit": "10.0000", "spend_id": crossing["id"]}
    assert alert == dict(raised["after"], id=alert["id"], organization_id=ORG, raised_at=T0.strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"))
    spend(store, BOB, "1")                            # 9.5: over 80 % already, under 100 %
    assert len(events(store, "credits.alert_raised")) == 1
    spend(store, BOB, "0.5")                          # 10: 100 %
    assert [a["threshold"] for a in alerts.list_alerts(store, ORG)["items"]] == ["100", "80"]   # newest first


def test_the_balance_floor_raises_an_alert_without_a_member(store):
    funded(store, amount="10", percents=(), floor="4.5")
    spend(store, OLGA, "5")
    spend(store, OLGA, "0.5")                         # 4.5: the floor reached
    spend(store, OLGA, "1")
    [alert] = alerts.list_alerts(store, ORG)["items"]
    assert (alert["kind"], alert["threshold"], alert["user_id"], alert["value"], alert["limit"]) == \
        ("balance_floor", "4.5000", None, "4.5000", "4.5000")
    assert len(events(store, "credits.alert_raised")) == 1


def test_a_refused_spend_raises_nothing(store):
    funded(store, amount="12", percents=(80, 100), floor="1")
    spend(store, BOB, "7")
    with pytest.raises(PaymentRequired) as over_budget:
        spend(store, BOB, "3.5")                       # would cross 80 % and 100 %
    with pytest.raises(PaymentRequired) as over_balance:
        spend(store, OLGA, "5.5")                      # would cross the floor, but the balance is 5
    assert (over_budget.value.code, over_balance.value.code) == ("budget_exceeded", "insufficient_credits")
    assert alert_count(store) == 0 and events(store, "credits.alert_raised") == []


def test_the_same_crossing_is_raised_once_per_period_and_again_the_next_month(store):
    funded(store, amount="50", percents=(80,))
    spend(store, BOB, "8", now=T0)
    # Crossed again in the same month (e.g. once a limit was lowered and raised): the key is taken.
    with store.write() as session:
        again = alerts.record_crossings(session, session.connection(), alerts.Thresholds((80,), None), ORG, BOB.id,
                                        units(10), (0, units(8)), (units(50), units(42)), "spend-x", T0)
    assert again == [] and len(events(store, "credits.alert_raised")) == 1
    april = datetime(2031, 4, 1, tzinfo=UTC)
    spend(store, BOB, "8", now=april)
    assert [(a["period"], a["threshold"]) for a in alerts.list_alerts(store, ORG)["items"]] == \
        [("2031-04", "80"), ("2031-03", "80")]
    assert len(events(store, "credits.alert_raised")) == 2


def test_cleared_settings_raise_nothing(store):
    funded(store, percents=(80,))
    domain.set_alert_settings(store, OLGA, ORG, [], None)
    with store.read() as session:
        assert alerts.settings_of(session, ORG) is None
    spend(store, BOB, "9")
    assert alert_count(store) == 0


def statements_of_a_spend(store, who, amount):
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()).lower())
    event.listen(store.engine, "before_cursor_execute", record)
    try:
        spend(store, who, amount)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    return [s for s in seen if "alert" in s]


def test_a_spend_pays_one_select_for_alerts_and_more_only_for_a_crossing(store):
    """SQLite's statements (on PostgreSQL the settings are read with the spend's other facts and the alerts
    written with its other changes, one statement each: test_spends counts them)."""
    if not store.is_sqlite:
        pytest.skip("SQLite's statements")
    funded(store, percents=())
    assert [s.split(" from ")[1].split()[0] for s in statements_of_a_spend(store, BOB, "1")] == ["alert_settings"]
    domain.set_alert_settings(store, OLGA, ORG, [80], None)
    assert len(statements_of_a_spend(store, BOB, "1")) == 1           # settings, no crossing: nothing more
    crossing = statements_of_a_spend(store, BOB, "6.5")
    assert len(crossing) == 2 and crossing[1].startswith("insert into alerts")


def test_alerts_are_paged_newest_first(store):
    funded(store, amount="100", percents=(10, 20, 30, 40, 50))
    for _ in range(5):
        spend(store, BOB, "1")
    first = alerts.list_alerts(store, ORG, limit=2)
    rest = alerts.list_alerts(store, ORG, cursor=first["next_cursor"], limit=10)
    assert [a["threshold"] for a in first["items"] + rest["items"]] == ["50", "40", "30", "20", "10"]
    assert rest["next_cursor"] is None


# ---- settings -------------------------------------------------------------------------------------
def test_settings_default_to_none_and_changes_are_audited_with_before_and_after(store):
    assert alerts.get_settings(store, ORG) == {"organization_id": ORG, "member_budget_percents": [],
                                               "balance_floor": None, "updated_by": None, "updated_at": None}
    answer = domain.set_alert_settings(store, OLGA, ORG, [100, 80], "5", now=T0)
    assert (answer["member_budget_percents"], answer["balance_floor"], answer["updated_by"]) == \
        ([80, 100], "5.0000", "olga")
    assert alerts.get_settings(store, ORG) == answer
    domain.set_alert_settings(store, OLGA, ORG, [80, 100], "5")              # no change: no event
    domain.set_alert_settings(store, BOB, ORG, [80, 100], None)
    first, second = events(store, "alert_settings.updated")
    assert (first["action"], first["target"], first["actor"]["id"]) == \
        ("update", {"type": "alert_settings", "id": ORG}, "olga")
    assert (first["before"], first["after"]) == ({"member_budget_percents": [], "balance_floor": None},
                                                 {"member_budget_percents": [80, 100], "balance_floor": "5.0000"})
    assert (second["before"], second["after"]) == ({"balance_floor": "5.0000"}, {"balance_floor": None})


@pytest.mark.parametrize("percents, floor, field, code", [
    (None, None, "member_budget_percents", "invalid_member_budget_percents"),
    ("80", None, "member_budget_percents", "invalid_member_budget_percents"),
    ([10, 20, 30, 40, 50, 60], None, "member_budget_percents", "too_many_member_budget_percents"),
    ([0], None, "member_budget_percents", "invalid_member_budget_percent"),
    ([101], None, "member_budget_percents", "invalid_member_budget_percent"),
    ([80.5], None, "member_budget_percents", "invalid_member_budget_percent"),
    ([True], None, "member_budget_percents", "invalid_member_budget_percent"),
    (["80"], None, "member_budget_percents", "invalid_member_budget_percent"),
    ([80, 80], None, "member_budget_percents", "duplicate_member_budget_percent"),
    ([], "-1", "balance_floor", "invalid_amount"),
    ([], "1.00001", "balance_floor", "too_many_decimal_places"),
    ([], "lots", "balance_floor", "invalid_amount"),
    ([], True, "balance_floor", "invalid_amount"),
])
def test_bad_settings_are_a_422_naming_the_field(store, percents, floor, field, code):
    """Refused by the entrypoint's declared input (common.contracts.alerts.AlertSettingsInput)."""
    with pytest.raises(ValidationFailed) as refused:
        credits_worker(store, OLGA).set_alert_settings(ORG, percents, floor)
    assert (refused.value.field, refused.value.code) == (field, code)
    assert events(store, "alert_settings.updated") == []


def test_five_percents_and_a_zero_floor_are_allowed(store):
    answer = domain.set_alert_settings(store, OLGA, ORG, [100, 1, 50, 75, 90], "0")
    assert (answer["member_budget_percents"], answer["balance_floor"]) == ([1, 50, 75, 90, 100], "0.0000")


# ---- the entrypoints: Owner/Admin/Billing, then their input ----------------------------------------
@pytest.mark.parametrize("roles, allowed", [(["owner"], True), (["admin"], True), (["billing"], True),
                                            (["member"], False), (["builder"], False)])
def test_owner_admin_and_billing_manage_alerts(store, roles, allowed):
    service = credits_worker(store, BOB, roles)
    calls = [lambda: service.set_alert_settings(ORG, [80], None), lambda: service.get_alert_settings(ORG),
             lambda: service.list_alerts(ORG)]
    for call in calls:
        if allowed:
            call()
        else:
            with pytest.raises(Forbidden):
                call()
    with pytest.raises(ValidationFailed if allowed else Forbidden):     # refused before the input is read
        service.set_alert_settings(ORG, [0], None)


def test_api_keys_read_alerts_and_settings_with_usage_read_and_never_change_settings(store):
    service = credits_worker(store, OLGA, ["owner"])
    service.auth.identity = Identity("key:k1", "", "Runtime", key_organization_id=ORG,
                                     key_scopes=("usage:read",))
    assert service.list_alerts(ORG) == {"items": [], "next_cursor": None}
    assert service.get_alert_settings(ORG)["member_budget_percents"] == []
    with pytest.raises(Forbidden) as refused:
        service.set_alert_settings(ORG, [80], None)
    assert refused.value.code == "api_key_not_allowed"
    service.auth.identity = Identity("key:k2", "", "Writer", key_organization_id=ORG,
                                     key_scopes=("usage:write",))
    for call in (lambda: service.list_alerts(ORG), lambda: service.get_alert_settings(ORG)):
        with pytest.raises(Forbidden) as refused:
            call()
        assert refused.value.code == "api_key_scope_missing"
