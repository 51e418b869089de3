"""Budget alerts (issue 15) end to end through the gateway, both backends: the settings (Owner/Admin/Billing,
their 422s and 403s, audited), an alert listed in GET .../alerts and in the audit trail after a crossing, a
balance floor, nothing for a refused spend, API keys reading alerts with usage:read; and 20 concurrent spends
of one member, served by two credits processes, that cross 80 % of a 10.00 limit together: exactly one
alert and one audit entry."""
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.e2e.helpers import (
    audit_entries,
    create_agent,
    create_organization,
    error_code,
    hand_billing_to,
    join,
    ok,
    path,
    wait_for,
)


def spend(api, org_id, agent_id, amount):
    return api.post(path(org_id, "/usage"), json={"agent_id": agent_id, "amount": amount},
                    headers={"Idempotency-Key": uuid.uuid4().hex})


def settings(api, org_id, percents=None, floor=None):
    body = {"member_budget_percents": percents or [], "balance_floor": floor}
    return ok(api.put(path(org_id, "/alert-settings"), json=body))


def alerts(api, org_id):
    return ok(api.get(path(org_id, "/alerts")))["items"]


def alert_entries(api, org_id):
    return [e for e in audit_entries(api, org_id, entity_type="alert") if e["type"] == "credits.alert_raised"]


def exactly_one_alert_entry(api, org_id):
    """The one credits.alert_raised entry of the trail, waited for (events reach the audit service within the
    event lag), and still the only one a moment later."""
    wait_for(lambda: alert_entries(api, org_id), timeout=20, message="the alert's audit entry")
    time.sleep(1.5)
    [entry] = alert_entries(api, org_id)
    return entry


def capped_member(system, limit, percents, credit="100"):
    """An organization with credit, an agent, a member assigned to it in a group with a monthly `limit`,
    and alert settings at `percents` of it."""
    owner = system.user("owner")
    org = create_organization(owner, "Alerts")["id"]
    agent = create_agent(owner, org, "Helper")["id"]
    member = join(system, owner, org, ["member"])
    ok(owner.put(path(org, f"/agents/{agent}/assignees/{member.id}")), 201)
    group = ok(owner.post(path(org, "/budget-groups"), json={"name": "Capped", "monthly_limit": limit}), 201)
    ok(owner.put(path(org, f"/budget-groups/{group['id']}/members/{member.id}")), 201)
    ok(owner.post(path(org, "/credits/grants"), json={"amount": credit, "type": "paid"}), 201)
    settings(owner, org, percents)
    return owner, org, agent, member


def test_settings_round_trip_for_owner_admin_and_billing_and_are_audited(system):
    owner = system.user("owner")
    org = create_organization(owner, "Alert settings")["id"]
    admin = join(system, owner, org, ["admin"], "admin")
    billing = join(system, owner, org, ["member"], "billing")
    hand_billing_to(owner, org, billing)
    ok(owner.patch(path(org, f"/members/{billing.id}"), json={"roles": ["billing"]}))
    member = join(system, owner, org, ["member"])
    assert ok(owner.get(path(org, "/alert-settings"))) == {
        "organization_id": org, "member_budget_percents": [], "balance_floor": None, "updated_by": None,
        "updated_at": None}

    answer = settings(owner, org, [100, 80], "5")
    assert (answer["member_budget_percents"], answer["balance_floor"], answer["updated_by"]) == \
        ([80, 100], "5.0000", owner.id)
    assert ok(billing.get(path(org, "/alert-settings"))) == answer
    assert settings(admin, org, [90])["balance_floor"] is None          # a PUT replaces: the floor is cleared
    assert settings(billing, org, [90], "2.5")["member_budget_percents"] == [90]
    ok(admin.get(path(org, "/alerts")))

    # Bad input is a 422 naming the field (whoever asks), then the roles: a Member is 403, a stranger 404.
    for body, field, code in [
            ({"member_budget_percents": [0]}, "member_budget_percents", "invalid_member_budget_percent"),
            ({"member_budget_percents": [80, 80]}, "member_budget_percents", "duplicate_member_budget_percent"),
            ({"member_budget_percents": [1, 2, 3, 4, 5, 6]}, "member_budget_percents",
             "too_many_member_budget_percents"),
            ({"member_budget_percents": "80"}, "member_budget_percents", "invalid_member_budget_percents"),
            ({"balance_floor": "-1"}, "balance_floor", "invalid_amount"),
            ({"balance_floor": "1.00001"}, "balance_floor", "too_many_decimal_places"),
            ({"thresholds": [80]}, "thresholds", "validation_error")]:
        for who in (owner, member):
            response = who.put(path(org, "/alert-settings"), json=body)
            assert error_code(response, 422) == code and response.json()["error"]["field"] == field, response.text
    for response in (member.get(path(org, "/alert-settings")), member.put(path(org, "/alert-settings"), json={}),
                     member.get(path(org, "/alerts"))):
        assert error_code(response, 403) == "forbidden"
    stranger = system.user("stranger")
    assert error_code(stranger.get(path(org, "/alert-settings")), 404) == "organization_not_found"
    assert error_code(stranger.get(path(org, "/alerts")), 404) == "organization_not_found"
    assert ok(owner.get(path(org, "/alert-settings")))["balance_floor"] == "2.5000"

    changes = wait_for(lambda: (lambda found: found if len(found) == 3 else None)(
        audit_entries(owner, org, entity_type="alert_settings")), message="three alert_settings entries")
    assert {e["type"] for e in changes} == {"alert_settings.updated"}
    first = min(changes, key=lambda e: e["occurred_at"])
    assert first["actor"]["id"] == owner.id and first["entity_id"] == org
    assert {c["field"]: (c["old_value"], c["new_value"]) for c in first["changes"]} == {
        "member_budget_percents": ([], [80, 100]), "balance_floor": (None, "5.0000")}


def test_a_crossing_is_listed_and_audited_and_a_refused_spend_raises_nothing(system):
    owner, org, agent, member = capped_member(system, "10", [80, 100])
    ok(spend(member, org, agent, "7"), 201)
    crossing = ok(spend(member, org, agent, "1.5"), 201)
    assert error_code(spend(member, org, agent, "2"), 402) == "budget_exceeded"     # would have crossed 100 %

    [alert] = alerts(owner, org)
    assert {k: v for k, v in alert.items() if k not in ("id", "raised_at", "period")} == {
        "organization_id": org, "kind": "member_budget", "threshold": "80", "user_id": member.id,
        "value": "8.5000", "limit": "10.0000", "spend_id": crossing["id"]}
    entry = exactly_one_alert_entry(owner, org)
    assert (entry["entity_id"], entry["action"], entry["actor"]) == (alert["id"], "create", {"id": "system"})
    assert {c["field"]: c["new_value"] for c in entry["changes"]}["threshold"] == "80"
    assert alerts(owner, org) == [alert]

    # Machines read alerts with usage:read, and nothing else of them.
    created = ok(owner.post(path(org, "/api-keys"), json={"name": "Monitor", "scopes": ["usage:read"]}), 201)
    monitor = requests.Session()
    monitor.headers["Authorization"] = f"Bearer {created['key']}"
    assert ok(monitor.get(system.url + path(org, "/alerts"), timeout=30))["items"] == [alert]
    assert ok(monitor.get(system.url + path(org, "/alert-settings"), timeout=30))["member_budget_percents"] == [80, 100]
    assert error_code(monitor.put(system.url + path(org, "/alert-settings"), json={"member_budget_percents": []},
                                  timeout=30), 403) == "api_key_not_allowed"


def test_a_balance_floor_is_raised_once_without_a_member(system):
    owner = system.user("owner")
    org = create_organization(owner, "Floor")["id"]
    agent = create_agent(owner, org, "Helper")["id"]
    ok(owner.post(path(org, "/credits/grants"), json={"amount": "10", "type": "paid"}), 201)
    settings(owner, org, floor="3")
    assert error_code(spend(owner, org, agent, "11"), 402) == "insufficient_credits"     # refused: nothing
    ok(spend(owner, org, agent, "6"), 201)
    floor_spend = ok(spend(owner, org, agent, "2"), 201)                                 # 4 -> 2
    ok(spend(owner, org, agent, "1"), 201)                                               # below it already
    [alert] = alerts(owner, org)
    assert (alert["kind"], alert["threshold"], alert["user_id"], alert["value"], alert["limit"],
            alert["spend_id"]) == ("balance_floor", "3.0000", None, "2.0000", "3.0000", floor_spend["id"])
    assert exactly_one_alert_entry(owner, org)["entity_id"] == alert["id"]


def test_twenty_concurrent_spends_crossing_80_percent_together_raise_exactly_one_alert(system):
    owner, org, agent, member = capped_member(system, "10.00", [80])
    system.start("credits", replica=2)        # two processes take the spends: only the key decides "once"
    try:
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda _: spend(member, org, agent, "0.45"), range(20)))
    finally:
        system.stop("credits-2")
    assert [a.status_code for a in answers] == [201] * 20, [a.text for a in answers if a.status_code != 201]
    [alert] = alerts(owner, org)
    # The 18th spend took the usage from 7.65 to 8.10, over 8.00: the one that crossed.
    assert (alert["threshold"], alert["value"], alert["user_id"]) == ("80", "8.1000", member.id)
    assert alert["spend_id"] in {a.json()["id"] for a in answers}
    assert exactly_one_alert_entry(owner, org)["entity_id"] == alert["id"]
    assert len(alerts(owner, org)) == 1
