"""The credits service killed (SIGKILL) in the middle of a storm of spends, then started again, while
clients retry every request that failed under the same Idempotency-Key: no key is charged twice, the
balance is grants minus spends entry by entry, and every spend that answered 201 is in the ledger and
has exactly one audit entry."""
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from tests.e2e.helpers import audit_entries, create_agent, create_organization, join, ok, wait_for
from tests.e2e.test_credits import assert_ledger_adds_up, ledger, spend

SPENDS = 60
KILL_AFTER = 10          # spends charged before the kill (a fixed delay let a fast machine finish first)


def test_credits_killed_mid_storm_charges_each_key_once(system, figure):
    owner = system.user("owner")
    org = create_organization(owner, "Storm")["id"]
    ok(owner.post(f"/v1/organizations/{org}/credits/grants", json={"amount": "1000", "type": "paid"}), 201)
    agent = create_agent(owner, org, "Busy")["id"]
    member = join(system, owner, org, ["member"])
    ok(owner.put(f"/v1/organizations/{org}/agents/{agent}/assignees/{member.id}"), 201)
    ok(spend(member, org, agent, "0.5"), 201)                     # the read models hold the facts
    keys = [uuid.uuid4().hex for _ in range(SPENDS)]
    seen, answered, kill_now = [], [], threading.Event()

    def until_charged(key):
        """Send the spend, and again under the same key after any failure, until it answers 201."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                response = spend(member, org, agent, "0.25", key)
                seen.append((response.status_code, time.monotonic() - started))
                if response.status_code == 201:
                    answered.append(key)
                    if len(answered) >= KILL_AFTER:
                        kill_now.set()
                    return response.json()["id"]
            except OSError:                                         # the gateway itself never goes away
                seen.append(("connection", time.monotonic() - started))
            time.sleep(0.2)
        raise AssertionError(f"spend {key} never succeeded")

    with ThreadPoolExecutor(10) as pool:
        charged = pool.map(until_charged, keys)
        assert kill_now.wait(timeout=60)
        system.stop("credits", kill=True)                           # a crash mid-storm
        time.sleep(1)
        system.start("credits")
        charged = list(charged)
    system.wait_healthy(timeout=30)

    spends = ledger(owner, org, kind="spend")
    assert len(spends) == SPENDS + 1, "each key charged exactly once"
    assert {s["id"] for s in spends} >= set(charged)
    assert_ledger_adds_up(owner, org)
    assert Decimal(ok(owner.get(f"/v1/organizations/{org}/credits"))["balance"]) == \
        Decimal("1000") - Decimal("0.5") - SPENDS * Decimal("0.25")
    entries = wait_for(lambda: (lambda found: found if len(found) == SPENDS + 1 else None)(
        audit_entries(owner, org, entity_type="spend")), timeout=30, message="one audit entry per spend")
    assert len({e["entity_id"] for e in entries}) == SPENDS + 1
    statuses = sorted({str(status) for status, _ in seen})
    figure(f"credits killed mid-storm: {len(seen)} requests for {SPENDS} spends, statuses {statuses}, "
          f"longest wait {max(seconds for _, seconds in seen):.2f} s")
