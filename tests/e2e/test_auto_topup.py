"""Auto top-up (SPEC §11), end to end against the running system and localstripe: spends that take the balance to
or below the threshold start exactly one top-up, sized to bring it back to the target in one charge; enabling
it at or below the threshold starts one at once; the monthly cap is never passed; three failures in a row
switch it off."""
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from tests.e2e.helpers import audit_entries, create_agent, create_organization, error_code, ok, path, wait_for

FAILS_EVERY_CHARGE = "pm_card_chargeCustomerFail"


def organization_with_card(system, card="pm_card_visa", credit=None):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    ok(owner.post(path(org, "/payment-methods"), json={"provider_payment_method_id": card}), 201)
    if credit:
        ok(owner.post(path(org, "/credits/grants"), json={"amount": credit, "type": "paid"}), 201)
    return owner, org, create_agent(owner, org, "Runner")["id"]


def auto_topup(api, org, **settings):
    return api.put(path(org, "/auto-topup"), json=dict({"enabled": True}, **settings))


def enabled(api, org, **settings):
    """Auto top-up switched on, once its event has travelled (credits keeps the threshold from it, and says
    when a spend leaves the balance at or below it: within the event's trip after the PUT)."""
    answer = ok(auto_topup(api, org, **settings))
    wait_for(lambda: [e for e in audit_entries(api, org) if e["type"] == "auto_topup.updated"] or None,
             message="auto_topup.updated")
    return answer


def spend(api, org, agent, amount="1"):
    return api.post(path(org, "/usage"), json={"agent_id": agent, "amount": amount},
                    headers={"Idempotency-Key": uuid.uuid4().hex})


def balance(api, org):
    return Decimal(ok(api.get(path(org, "/credits")))["balance"])


def topups(api, org, status=None):
    params = {"type": "auto_topup", **({"status": status} if status else {})}
    return ok(api.get(path(org, "/transactions"), params=params))["items"]


def test_concurrent_spends_crossing_the_threshold_start_exactly_one_top_up(system):
    owner, org, agent = organization_with_card(system, credit="1010")
    enabled(owner, org, threshold="1000", target="5000")
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda _: spend(owner, org, agent).status_code, range(20)))
    assert statuses == [201] * 20
    [topup] = wait_for(lambda: (lambda t: t if t and t[0]["status"] == "success" else None)(topups(owner, org)),
                       message="the top-up")
    assert topup["created_by"] == "system" and Decimal(topup["credits"]) >= Decimal("4000")
    final = wait_for(lambda: (lambda b: b if b == Decimal("990") + Decimal(topup["credits"]) else None)(
        balance(owner, org)), message="the top-up's credit")
    assert Decimal("4980") <= final <= Decimal("5000")          # the target, less the spends after the crossing
    assert len(topups(owner, org)) == 1                          # and never a second


def test_enabling_at_the_threshold_tops_up_at_once(system):
    owner, org, _ = organization_with_card(system)
    settings = ok(auto_topup(owner, org, threshold="10", target="600"))
    assert (settings["enabled"], settings["threshold"], settings["target"]) == (True, "10.0000", "600.0000")
    assert balance(owner, org) == Decimal("600")                # charged before the PUT answered
    [topup] = topups(owner, org, "success")
    assert (topup["amount_usd"], topup["credits"]) == ("6.00", "600.0000")
    assert ok(owner.get(path(org, "/auto-topup")))["enabled"] is True


def test_the_monthly_cap_is_never_passed(system):
    owner, org, agent = organization_with_card(system, credit="20")
    enabled(owner, org, threshold="10", target="600", monthly_cap_usd="10.00")
    ok(spend(owner, org, agent, "11"), 201)                    # 9 left: a 5.91 USD top-up, within the cap
    wait_for(lambda: topups(owner, org, "success") or None, message="the first top-up")
    ok(spend(owner, org, agent, "595"), 201)                   # 5 left: 5.95 more would pass 10.00
    entries = wait_for(lambda: [e for e in audit_entries(owner, org) if e["type"] == "auto_topup.cap_reached"] or None,
                       message="auto_topup.cap_reached")
    assert len(entries) == 1 and len(topups(owner, org)) == 1
    [alert] = wait_for(lambda: ok(owner.get(path(org, "/alerts")))["items"] or None, message="the cap's alert")
    assert (alert["kind"], alert["threshold"], alert["transaction_id"]) == ("auto_topup_cap_reached", None, None)


def test_three_failed_top_ups_in_a_row_switch_it_off(system):
    owner, org, agent = organization_with_card(system, card=FAILS_EVERY_CHARGE, credit="20")
    enabled(owner, org, threshold="19.5", target="600")
    for expected in (1, 2, 3):                                 # 19, 18, 17 left: each a top-up, each failing
        ok(spend(owner, org, agent), 201)
        wait_for(lambda n=expected: len(topups(owner, org, "failed")) == n or None, message=f"failed top-up {expected}")
    ok(spend(owner, org, agent), 201)                          # off now: no fourth
    settings = wait_for(lambda: (lambda s: s if not s["enabled"] else None)(ok(owner.get(path(org, "/auto-topup")))),
                        message="auto top-up switched off")
    assert settings["consecutive_failures"] == 3
    disabled = wait_for(lambda: [e for e in audit_entries(owner, org) if e["type"] == "auto_topup.disabled"] or None,
                        message="auto_topup.disabled")
    assert len(disabled) == 1 and disabled[0]["actor"]["id"] == "system"
    assert len(topups(owner, org)) == 3 and balance(owner, org) == Decimal("16")
    # Beside the budget alerts: one per failed top-up, and the switch-off.
    raised = wait_for(lambda: (lambda a: a if len(a) == 4 else None)(ok(owner.get(path(org, "/alerts")))["items"]),
                      message="the auto top-up alerts")
    assert sorted(a["kind"] for a in raised) == ["auto_topup_disabled"] + ["auto_topup_failed"] * 3
    assert {a["transaction_id"] for a in raised if a["kind"] == "auto_topup_failed"} == \
        {t["id"] for t in topups(owner, org)}


def test_bad_settings_are_refused(system):
    owner, org, _ = organization_with_card(system)
    assert error_code(auto_topup(owner, org, threshold="100", target="50"), 422) == "target_not_above_threshold"
    assert error_code(auto_topup(owner, org, threshold="1", target="50", payment_method_id=str(uuid.uuid4())),
                      404) == "payment_method_not_found"
    assert error_code(owner.put(path(org, "/auto-topup"), json={"threshold": "1", "target": "5"}), 422) == \
        "validation_error"
    # The cap is refused in its own name, not a purchase's: below one top-up's 5.00 minimum, or malformed.
    for cap, code in (("4.99", "amount_out_of_range"), ("10.001", "invalid_amount"), (True, "invalid_amount")):
        refused = auto_topup(owner, org, threshold="1", target="50", monthly_cap_usd=cap)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["field"] == "monthly_cap_usd", refused.text
        assert "monthly_cap_usd" in refused.json()["error"]["message"] and refused.json()["error"]["code"] == code
    unchanged = ok(owner.get(path(org, "/auto-topup")))
    assert unchanged["enabled"] is False and unchanged["credits_per_usd"] == 100   # the price the console shows
