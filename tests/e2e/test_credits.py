"""Credits and budget groups (product rules §4, §5), end to end through the gateway against the running system:
grants, spends and the ledger, refusals that name what binds, idempotent spends, the dry run, budget
groups, "My Credit", expiry; and many concurrent spends (gateway and RPC, two credits processes)
that never overdraw a balance or a budget."""
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from nameko.standalone.rpc import ClusterRpcProxy

from common.auth import USER_EMAIL_KEY, USER_ID_KEY, USER_NAME_KEY
from common.errors import PaymentRequired
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


def grant(api, org_id, amount, type="paid", **extra):
    return ok(api.post(path(org_id, "/credits/grants"), json=dict(amount=amount, type=type, **extra)), 201)


def spend(api, org_id, agent_id, amount, key=None):
    return api.post(path(org_id, "/usage"), json={"agent_id": agent_id, "amount": amount},
                    headers={"Idempotency-Key": key or uuid.uuid4().hex})


def ledger(api, org_id, **params):
    entries, cursor = [], None
    while True:
        page = ok(api.get(path(org_id, "/credits/ledger"), params=dict(params, limit=200,
                                                                       **({"cursor": cursor} if cursor else {}))))
        entries += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return entries


def balance(api, org_id):
    return Decimal(ok(api.get(path(org_id, "/credits")))["balance"])


def assert_ledger_adds_up(api, org_id):
    """Grants minus spends minus expiries equals the balance, and each entry's balance_after follows
    from the one before."""
    entries = list(reversed(ledger(api, org_id)))
    running = Decimal(0)
    for entry in entries:
        running += Decimal(entry["amount"]) * (1 if entry["kind"] == "grant" else -1)
        assert Decimal(entry["balance_after"]) == running, entry
    assert running == balance(api, org_id)
    return entries


def team(system, roles=("member",), label="member"):
    """An organization with credit, an agent, and a member of each of `roles` assigned to it."""
    owner = system.user("owner")
    org = create_organization(owner, "Credits")["id"]
    agent = create_agent(owner, org, "Helper")["id"]
    people = []
    for role in roles:
        person = join(system, owner, org, [role], label)
        ok(owner.put(path(org, f"/agents/{agent}/assignees/{person.id}")), 201)
        people.append(person)
    return owner, org, agent, people


def test_grants_spends_and_the_ledger(system):
    owner, org, agent, (member,) = team(system)
    soon = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    paid = grant(owner, org, "10", "paid")
    free_later = grant(owner, org, "3", "free", expires_at=later)
    free_soon = grant(owner, org, "2.5", "free", expires_at=soon)
    assert (paid["amount"], paid["remaining"], paid["expires_at"]) == ("10.0000", "10.0000", None)

    page = ok(owner.get(path(org, "/credits")))
    assert (page["balance"], page["free_balance"], page["paid_balance"]) == ("15.5000", "5.5000", "10.0000")
    # The order spends take: free first, the soonest expiring first, paid last.
    assert [g["id"] for g in page["grants"]] == [free_soon["id"], free_later["id"], paid["id"]]

    # Free credit first, the soonest expiring first, then paid.
    first = ok(spend(member, org, agent, "4"), 201)
    assert (first["amount"], first["user_id"], first["agent_id"]) == ("4.0000", member.id, agent)
    second = ok(spend(member, org, agent, 2.0001), 201)     # a JSON number is read exactly, never as a float
    assert second["amount"] == "2.0001"
    entries = assert_ledger_adds_up(owner, org)
    spends = [e for e in entries if e["kind"] == "spend"]
    assert [(a["grant_id"], a["amount"]) for a in spends[0]["allocations"]] == \
        [(free_soon["id"], "2.5000"), (free_later["id"], "1.5000")]
    assert [(a["grant_id"], a["amount"]) for a in spends[1]["allocations"]] == \
        [(free_later["id"], "1.5000"), (paid["id"], "0.5001")]
    assert spends[0]["actor"] == {"id": member.id, "email": member.email} and spends[0]["user_id"] == member.id
    assert [e["balance_after"] for e in entries] == ["10.0000", "13.0000", "15.5000", "11.5000", "9.4999"]
    assert balance(owner, org) == Decimal("9.4999")
    assert ok(owner.get(path(org, "/credits")))["spent_this_period"] == "6.0001"
    assert [e["kind"] for e in ledger(owner, org, kind="grant")] == ["grant"] * 3
    assert len(ok(owner.get(path(org, "/credits/ledger"), params={"limit": 2}))["items"]) == 2

    # One audit entry per grant and per spend.
    wait_for(lambda: len([e for e in audit_entries(owner, org) if e["type"] in ("credits.granted", "credits.spent")])
             == 5, message="grant and spend audit entries")
    spent = [e for e in audit_entries(owner, org, action="create") if e["type"] == "credits.spent"]
    assert {e["actor"]["id"] for e in spent} == {member.id}
    assert {e["entity_type"] for e in spent} == {"spend"}


def test_refusals_name_what_binds_and_change_nothing(system):
    owner, org, agent, (member, builder) = team(system, ("member", "builder"))
    grant(owner, org, "5")
    group = ok(owner.post(path(org, "/budget-groups"), json={"name": "Interns", "monthly_limit": "2"}), 201)
    ok(owner.put(path(org, f"/budget-groups/{group['id']}/members/{member.id}")), 201)
    ok(spend(member, org, agent, "1.5"), 201)

    refused = spend(member, org, agent, "1")
    assert error_code(refused, 402) == "budget_exceeded"
    details = refused.json()["error"]["details"]
    first_of_next_month = datetime.now(UTC).replace(day=28) + timedelta(days=4)
    assert details == {"budget_group_id": group["id"], "budget_group_name": "Interns", "limit": "2.0000",
                       "used": "1.5000", "remaining": "0.5000", "requested": "1.0000",
                       "period": datetime.now(UTC).strftime("%Y-%m"), "period_start": details["period_start"],
                       "resets_at": first_of_next_month.strftime("%Y-%m-01T00:00:00.000000Z")}
    # Not in a group: only the balance binds.
    assert error_code(spend(builder, org, agent, "3.5001"), 402) == "insufficient_credits"
    ok(spend(builder, org, agent, "3.5"), 201)
    # Both exhausted: the tighter one is named.
    assert error_code(spend(member, org, agent, "0.5"), 402) == "insufficient_credits"
    assert balance(owner, org) == Decimal("0")
    assert len(ledger(owner, org, kind="spend")) == 2

    # Bad input: 4xx naming the field and nothing charged.
    grant(owner, org, "100")
    for amount, code in (("-1", "invalid_amount"), ("0", "invalid_amount"), ("1.00001", "too_many_decimal_places"),
                         ("abc", "invalid_amount"), ("1e10", "invalid_amount"), ("1000000001", "amount_too_large"),
                         ("NaN", "invalid_amount")):
        response = spend(member, org, agent, amount)
        assert (response.status_code, response.json()["error"]["code"], response.json()["error"]["field"]) == \
            (422, code, "amount"), amount
    assert error_code(spend(member, org, agent, True), 422) == "validation_error"
    no_key = member.post(path(org, "/usage"), json={"agent_id": agent, "amount": "1"})
    assert error_code(no_key, 400) == "idempotency_key_required"
    assert no_key.json()["error"]["field"] == "Idempotency-Key"
    assert error_code(spend(member, org, "no-such-agent", "1"), 404) == "agent_not_found"
    other_agent = create_agent(owner, org, "Not theirs")["id"]
    assert error_code(spend(member, org, other_agent, "1"), 404) == "agent_not_found"
    outsider = system.user("outsider")
    assert error_code(spend(outsider, org, agent, "1"), 404) == "organization_not_found"
    assert len(ledger(owner, org, kind="spend")) == 2


def test_a_spend_is_charged_once_per_idempotency_key(system):
    owner, org, agent, (member,) = team(system)
    grant(owner, org, "10")
    first = spend(member, org, agent, "1", key="order-1")
    again = spend(member, org, agent, "1", key="order-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    # The same key for another spend is a mistake, not a replay.
    assert error_code(spend(member, org, agent, "2", key="order-1"), 409) == "idempotency_key_reused"

    # Sent many times at once: one charge, every answer the same spend.
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: spend(member, org, agent, "0.25", key="order-2"), range(12)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert balance(owner, org) == Decimal("8.75")
    assert len(ledger(owner, org, kind="spend")) == 2
    # A refused spend stores nothing: once credit arrives, the same key goes through.
    assert error_code(spend(member, org, agent, "9", key="order-3"), 402) == "insufficient_credits"
    grant(owner, org, "1")
    ok(spend(member, org, agent, "9", key="order-3"), 201)
    assert_ledger_adds_up(owner, org)


def test_dry_run_and_my_usage_tell_what_can_still_be_spent(system):
    owner, org, agent, (member,) = team(system)
    grant(owner, org, "7")
    group = ok(owner.post(path(org, "/budget-groups"), json={"name": "Capped", "monthly_limit": "5"}), 201)
    ok(owner.put(path(org, f"/budget-groups/{group['id']}/members/{member.id}")), 201)
    ok(spend(member, org, agent, "1"), 201)

    dry = ok(member.post(path(org, "/usage"), json={"agent_id": agent, "amount": "4.5", "dry_run": True}))
    assert (dry["allowed"], dry["can_spend"], dry["binding_limit"]) == (False, "4.0000", "budget_group")
    assert dry["refusal"]["code"] == "budget_exceeded" and dry["budget"]["used"] == "1.0000"
    dry = ok(member.post(path(org, "/usage"), json={"agent_id": agent, "amount": "4", "dry_run": True}))
    assert (dry["allowed"], dry["refusal"]) == (True, None)
    assert balance(owner, org) == Decimal("6")       # nothing charged by a dry run
    ok(spend(owner, org, agent, "3"), 201)            # the owner is in no group
    dry = ok(member.post(path(org, "/usage"), json={"agent_id": agent, "dry_run": True}))
    assert (dry["allowed"], dry["can_spend"], dry["binding_limit"]) == (None, "3.0000", "balance")

    mine = ok(member.get("/v1/me/usage"))["items"]
    here = next(item for item in mine if item["organization_id"] == org)
    assert (here["organization_name"], here["used"], here["can_spend"], here["binding_limit"]) == \
        ("Credits", "1.0000", "3.0000", "balance")
    assert here["budget"]["budget_group_name"] == "Capped" and here["budget"]["limit"] == "5.0000"
    assert len(mine) == 2     # their Individual organization too, with nothing spent
    individual = next(item for item in mine if item["organization_id"] != org)
    assert (individual["used"], individual["can_spend"], individual["budget"]["budget_group_id"]) == \
        ("0.0000", "0.0000", None)
    # Paged like every list: a page of one, then the rest from next_cursor.
    first_page = ok(member.get("/v1/me/usage", params={"limit": 1}))
    assert len(first_page["items"]) == 1 and first_page["next_cursor"]
    rest = ok(member.get("/v1/me/usage", params={"limit": 1, "cursor": first_page["next_cursor"]}))
    assert [i["organization_id"] for i in first_page["items"] + rest["items"]] == [i["organization_id"] for i in mine]
    assert rest["next_cursor"] is None


def test_budget_groups(system):
    owner, org, agent, (member, builder, other_builder) = team(system, ("member", "builder", "builder"))
    admin = join(system, owner, org, ["admin"], "admin")
    grant(owner, org, "100")
    groups = path(org, "/budget-groups")
    assert error_code(admin.post(groups, json={"monthly_limit": "1"}), 422) == "name_required"
    assert error_code(admin.post(groups, json={"name": "x" * 201}), 422) == "name_too_long"
    assert error_code(admin.post(groups, json={"name": "A", "monthly_limit": "-1"}), 422) == "invalid_amount"
    assert error_code(admin.post(groups, json={"name": "A", "builder_limit": -1}), 422) == "invalid_builder_limit"
    assert error_code(admin.post(groups, json={"name": "A", "builder_limit": 1.5}), 422) == "validation_error"
    assert error_code(admin.post(groups, json={"name": "A", "colour": "red"}), 422) == "validation_error"
    assert ok(admin.get(groups))["items"] == []

    capped = ok(admin.post(groups, json={"name": "  Capped  ", "monthly_limit": "3", "builder_limit": 1}), 201)
    open_group = ok(admin.post(groups, json={"name": "Open"}), 201)
    assert (capped["name"], capped["monthly_limit"], capped["builder_limit"]) == ("Capped", "3.0000", 1)
    listed = ok(admin.get(groups))["items"]
    assert [(g["name"], g["monthly_limit_label"], g["member_count"]) for g in listed] == \
        [("Capped", "3.0000", 0), ("Open", "No limit", 0)]

    capped_path = f"{groups}/{capped['id']}"
    ok(admin.put(f"{capped_path}/members/{member.id}"), 201)
    assert ok(admin.put(f"{capped_path}/members/{member.id}"))["budget_group_id"] == capped["id"]   # 200: already
    ok(admin.put(f"{capped_path}/members/{builder.id}"), 201)
    # The builder limit is enforced when assigning.
    refused = admin.put(f"{capped_path}/members/{other_builder.id}")
    assert error_code(refused, 409) == "builder_limit_reached"
    assert error_code(admin.put(f"{capped_path}/members/{uuid.uuid4().hex}"), 404) == "member_not_found"

    # A member is in at most one group: putting them in another moves them.
    ok(admin.put(f"{groups}/{open_group['id']}/members/{other_builder.id}"), 201)
    ok(admin.put(f"{groups}/{open_group['id']}/members/{builder.id}"), 201)
    ok(admin.put(f"{capped_path}/members/{other_builder.id}"), 201)   # room again for one Builder
    assert [(g["name"], g["member_count"]) for g in ok(admin.get(groups))["items"]] == [("Capped", 2), ("Open", 1)]
    # The member list shows each one's group from the members service's read model (an event's trip behind).
    placed = {owner.id: None, admin.id: None, member.id: capped["id"], builder.id: open_group["id"],
              other_builder.id: capped["id"]}
    wait_for(lambda: {m["user_id"]: m["budget_group_id"]
                      for m in ok(member.get(path(org, "/members")))["items"]} == placed,
             message="the member list shows the groups")
    csv_lines = member.get(path(org, "/members"), params={"format": "csv"}).text.splitlines()
    assert any(line.startswith(member.id) and capped["id"] in line for line in csv_lines)
    # A role edit answers the member as the list shows them, their group included.
    edited = ok(owner.patch(path(org, f"/members/{member.id}"), json={"roles": ["member"]}))
    assert edited["budget_group_id"] == capped["id"]

    # The detail: each member's usage this period against the limit.
    ok(spend(member, org, agent, "2.5"), 201)
    detail = ok(admin.get(capped_path))
    usage = {m["user_id"]: (m["used"], m["limit"], m["remaining"]) for m in detail["members"]["items"]}
    assert usage == {member.id: ("2.5000", "3.0000", "0.5000"), other_builder.id: ("0.0000", "3.0000", "3.0000")}
    assert detail["resets_at"].endswith("-01T00:00:00.000000Z") and detail["member_count"] == 2
    assert len(ok(admin.get(capped_path, params={"limit": 1}))["members"]["items"]) == 1

    # A lower limit applies from the next spend on; past usage stays.
    assert error_code(spend(member, org, agent, "1"), 402) == "budget_exceeded"
    ok(admin.patch(capped_path, json={"monthly_limit": "2"}))
    assert {m["user_id"]: m["used"] for m in ok(admin.get(capped_path))["members"]["items"]}[member.id] == "2.5000"
    assert ok(member.post(path(org, "/usage"), json={"agent_id": agent, "dry_run": True}))["can_spend"] == "0.0000"
    ok(admin.patch(capped_path, json={"monthly_limit": None}))
    assert ok(admin.get(groups))["items"][0]["monthly_limit_label"] == "No limit"
    ok(spend(member, org, agent, "1"), 201)
    ok(admin.patch(capped_path, json={"monthly_limit": "3"}))

    # Out of the group, and deleting a group: its members are no longer capped.
    ok(admin.delete(f"{capped_path}/members/{other_builder.id}"), 204)
    assert error_code(admin.delete(f"{capped_path}/members/{other_builder.id}"), 404) == "not_in_budget_group"
    ok(admin.delete(capped_path), 204)
    assert error_code(admin.get(capped_path), 404) == "budget_group_not_found"
    ok(spend(member, org, agent, "5"), 201)
    wait_for(lambda: ok(member.get(path(org, "/members"), params={"q": member.email}))["items"][0]["budget_group_id"]
             is None, message="the deleted group's member in no group")

    # A member who leaves the organization leaves their group (the credits service hears member.removed).
    ok(owner.delete(path(org, f"/members/{builder.id}")), 204)
    wait_for(lambda: ok(admin.get(groups))["items"][0]["member_count"] == 0, message="removed member out of group")

    # One entry per change: 5 placements and moves, 1 taking out, 1 for the member who left (the
    # group's deletion is one budget_group.deleted entry, not one per member).
    moves = wait_for(lambda: [e for e in audit_entries(owner, org) if e["type"] == "member.budget_group_changed"]
                     if len(audit_entries(owner, org, entity_type="member", field="budget_group_id")) == 7 else None,
                     message="7 budget group changes in the trail")
    types = [e["type"] for e in audit_entries(owner, org, entity_type="budget_group")]
    assert types.count("budget_group.created") == 2 and types.count("budget_group.deleted") == 1
    assert types.count("budget_group.updated") == 3
    by_removal = [e for e in moves if e["entity_id"] == builder.id and e["actor"]["id"] == owner.id]
    assert by_removal and by_removal[0]["changes"] == [
        {"field": "budget_group_id", "old_value": open_group["id"], "new_value": None}]


def test_expired_free_credit_is_written_off_and_not_spendable(system):
    owner, org, agent, (member,) = team(system)
    expiring = grant(owner, org, "2", "free",
                     expires_at=(datetime.now(UTC) + timedelta(seconds=3)).isoformat())
    grant(owner, org, "1", "paid")
    assert error_code(owner.post(path(org, "/credits/grants"), json={
        "amount": "1", "type": "paid", "expires_at": "2030-01-01T00:00:00Z"}), 422) == "expiry_only_for_free"
    assert error_code(owner.post(path(org, "/credits/grants"), json={
        "amount": "1", "type": "free", "expires_at": "2020-01-01T00:00:00Z"}), 422) == "expiry_in_past"
    ok(spend(member, org, agent, "0.5"), 201)      # from the free grant
    # The expiry job (every second in tests) writes off what is left, as the system.
    expiry = wait_for(lambda: ledger(owner, org, kind="expiry"), message="the expiry in the ledger")
    assert (expiry[0]["grant_id"], expiry[0]["amount"], expiry[0]["actor"]) == \
        (expiring["id"], "1.5000", {"id": "system"})
    assert balance(owner, org) == Decimal("1")
    assert error_code(spend(member, org, agent, "1.5"), 402) == "insufficient_credits"
    assert_ledger_adds_up(owner, org)
    entry = wait_for(lambda: [e for e in audit_entries(owner, org) if e["type"] == "credits.expired"],
                     message="the expiry's audit entry")
    assert entry[0]["actor"] == {"id": "system"} and entry[0]["entity_id"] == expiring["id"]


def test_billing_holder_sees_credits_and_may_grant(system):
    owner, org, agent, (member,) = team(system)
    hand_billing_to(owner, org, member)
    grant(member, org, "4")
    assert balance(member, org) == Decimal("4")
    admin = join(system, owner, org, ["admin"], "admin")
    assert error_code(admin.post(path(org, "/credits/grants"), json={"amount": "1", "type": "paid"}), 403) == \
        "forbidden"
    assert error_code(admin.get(path(org, "/credits/ledger")), 403) == "forbidden"
    # A retried top-up with the same key adds the credit once.
    headers = {"Idempotency-Key": "top-up-1"}
    first = member.post(path(org, "/credits/grants"), json={"amount": "6", "type": "paid"}, headers=headers)
    again = member.post(path(org, "/credits/grants"), json={"amount": "6", "type": "paid"}, headers=headers)
    assert first.json() == again.json() and balance(member, org) == Decimal("10")


# ---- concurrency -----------------------------------------------------------------------------------
def rpc_spender(system, api):
    """Spends through a standalone Nameko RPC proxy as `api`'s user (what the gateway does, minus HTTP)."""
    context = {USER_ID_KEY: api.id, USER_EMAIL_KEY: api.email, USER_NAME_KEY: api.name}
    proxy = ClusterRpcProxy({"AMQP_URI": system.env["AMQP_URI"]}, context_data=context)
    return proxy


def test_concurrent_spends_never_overdraw_balance_or_budget(system):
    """Many spends at once, through the gateway and straight over RPC, handled by two credits
    processes: a small balance and a small monthly limit are never exceeded, and the ledger adds up."""
    owner, org, agent, people = team(system, ("member",) * 4)
    group = ok(owner.post(path(org, "/budget-groups"), json={"name": "Small", "monthly_limit": "1.5"}), 201)
    for person in people:
        ok(owner.put(path(org, f"/budget-groups/{group['id']}/members/{person.id}")), 201)
    grant(owner, org, "4", "free", expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    grant(owner, org, "1", "paid")
    system.start("credits", replica=2)
    try:
        results = []       # (user id, amount, accepted)

        def over_http(args):
            person, n = args
            response = spend(person, org, agent, "0.25", key=f"http-{n}")
            assert response.status_code in (201, 402), response.text
            outcome = response.status_code == 201 or response.json()["error"]["code"]
            results.append((person.id, Decimal("0.25"), outcome))

        def over_rpc(person):
            accepted = 0
            with rpc_spender(system, person) as rpc:
                for n in range(8):
                    try:
                        rpc.credits.spend(org, agent, "0.5", f"rpc-{person.id}-{n}")
                        results.append((person.id, Decimal("0.5"), True))
                        accepted += 1
                    except PaymentRequired as refusal:
                        results.append((person.id, Decimal("0.5"), refusal.code))
            return accepted

        owner_spends = [(owner, n) for n in range(20)]                     # the owner: capped by the balance only
        member_spends = [(p, n) for p in people for n in range(10)]
        with ThreadPoolExecutor(24) as pool:
            rpc_jobs = [pool.submit(over_rpc, person) for person in people[:2]]
            list(pool.map(over_http, owner_spends + member_spends))
            [job.result() for job in rpc_jobs]
    finally:
        system.stop("credits-2")

    accepted = [(user, amount) for user, amount, outcome in results if outcome is True]
    refusals = {outcome for _, _, outcome in results if outcome is not True}
    assert len(results) == 20 + 40 + 16 and accepted
    assert refusals and refusals <= {"insufficient_credits", "budget_exceeded"}   # demand was far above supply
    total = sum(amount for _, amount in accepted)
    assert total <= Decimal("5")
    for person in people:
        assert sum(amount for user, amount in accepted if user == person.id) <= Decimal("1.5")
    assert balance(owner, org) == Decimal("5") - total
    spends = [e for e in assert_ledger_adds_up(owner, org) if e["kind"] == "spend"]
    assert len(spends) == len(accepted)
    # Every member's usage as the group detail reports it matches what was accepted for them.
    group_detail = ok(owner.get(path(org, f"/budget-groups/{group['id']}")))
    detail = {m["user_id"]: Decimal(m["used"]) for m in group_detail["members"]["items"]}
    for person in people:
        assert detail[person.id] == sum(amount for user, amount in accepted if user == person.id)


def test_a_hundred_spends_of_one_organization_at_once_on_two_processes_are_exact(system):
    """One busy organization: 100 spends at once through the gateway, taken by two credits processes (each
    deciding the spends that wait for the organization together, spend_batches.py, and the account's row lock
    deciding between the processes). 5 members spend 1 twenty times each in a group of 15 a month, with 70 of
    credit: exactly 70 are accepted, none beyond a member's 15, and the balance, every member's usage and the
    ledger say so."""
    owner, org, agent, people = team(system, ("member",) * 5)
    group = ok(owner.post(path(org, "/budget-groups"), json={"name": "Fifteen", "monthly_limit": "15"}), 201)
    for person in people:
        ok(owner.put(path(org, f"/budget-groups/{group['id']}/members/{person.id}")), 201)
    grant(owner, org, "70", "paid")
    system.start("credits", replica=2)
    try:
        def one(n):
            person = people[n % 5]
            response = spend(person, org, agent, "1", key=f"hot-{n}")
            assert response.status_code in (201, 402), response.text
            return person.id, response.status_code == 201 or response.json()["error"]["code"]
        with ThreadPoolExecutor(100) as pool:
            results = list(pool.map(one, range(100)))
    finally:
        system.stop("credits-2")
    accepted = {person.id: sum(1 for user, outcome in results if user == person.id and outcome is True)
                for person in people}
    assert sum(accepted.values()) == 70 and max(accepted.values()) <= 15, accepted
    assert {outcome for _, outcome in results if outcome is not True} <= {"insufficient_credits", "budget_exceeded"}
    assert balance(owner, org) == Decimal("0")
    assert len([e for e in assert_ledger_adds_up(owner, org) if e["kind"] == "spend"]) == 70
    group_detail = ok(owner.get(path(org, f"/budget-groups/{group['id']}")))
    assert {m["user_id"]: Decimal(m["used"]) for m in group_detail["members"]["items"]} == \
        {user: Decimal(count) for user, count in accepted.items()}
