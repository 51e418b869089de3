"""The billing service killed (SIGKILL) in the middle of a storm of purchases, then started again, while
clients retry every purchase that failed under the same Idempotency-Key: every payment the provider took is
found (by the reconciliation job or the webhook) and credited exactly once, a key never charges twice, and no
transaction stays pending."""
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import stripe

from common.config import settings
from tests.e2e.helpers import create_organization, ok, path, wait_for
from tests.e2e.test_billing import transaction_of

PURCHASES = 30
KILL_AFTER = 5


def test_billing_killed_mid_purchases_credits_each_payment_once(system, figure):
    owner = system.user("owner")
    org = create_organization(owner, "Buyer")["id"]
    ok(owner.post(path(org, "/payment-methods"), json={"provider_payment_method_id": "pm_card_visa"}), 201)
    keys = [uuid.uuid4().hex for _ in range(PURCHASES)]
    seen, answered, kill_now = [], [], threading.Event()

    def until_answered(key):
        """Buy 5.00, and again under the same key after any failure, until it answers 201."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                response = owner.post(path(org, "/purchases"), json={"amount_usd": "5.00"},
                                      headers={"Idempotency-Key": key})
                seen.append((response.status_code, time.monotonic() - started))
                if response.status_code == 201:
                    answered.append(key)
                    if len(answered) >= KILL_AFTER:
                        kill_now.set()
                    return response.json()
            except OSError:
                seen.append(("connection", time.monotonic() - started))
            time.sleep(0.2)
        raise AssertionError(f"purchase {key} never answered")

    with ThreadPoolExecutor(6) as pool:
        answers = pool.map(until_answered, keys)
        assert kill_now.wait(timeout=60)
        system.stop("billing", kill=True)                       # a crash, maybe between a charge and its commit
        time.sleep(1)
        system.start("billing")
        answers = list(answers)
    system.wait_healthy(timeout=30)

    def settled():
        items = ok(owner.get(path(org, "/transactions"), params={"limit": 200}))["items"]
        return items if items and all(t["status"] != "pending" for t in items) else None
    transactions = wait_for(settled, timeout=90, message="every transaction settled (the reconciliation job)")
    succeeded = [t for t in transactions if t["status"] == "success"]
    assert len({a["id"] for a in answers}) == PURCHASES                    # each key: one transaction
    # A purchase answered while its process died may have been charged (settled success by the job) or not
    # (cancelled: never sent to the provider); none failed, none is left pending.
    assert {t["status"] for t in transactions} <= {"success", "cancelled"}
    ours = {t["id"] for t in transactions}
    payments = settings(system.env).payments
    client = stripe.StripeClient(payments.api_key, base_addresses={"api": payments.api_base})
    intents = client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
    charged = {transaction_of(i) for i in intents if i.status == "succeeded" and transaction_of(i) in ours}
    # Every payment the provider took is a successful transaction, credited exactly once.
    assert charged == {t["id"] for t in succeeded}
    balance = Decimal(ok(owner.get(path(org, "/credits")))["balance"])
    assert balance == Decimal("500") * len(succeeded)
    grants = ok(owner.get(path(org, "/credits/ledger"), params={"kind": "grant", "limit": 200}))["items"]
    assert len(grants) == len(succeeded)
    statuses = sorted({str(status) for status, _ in seen})
    figure(f"billing killed mid-purchases: {len(seen)} requests for {PURCHASES} purchases, statuses {statuses}, "
           f"{len(succeeded)} payments credited once each, {len(transactions) - len(succeeded)} cancelled or failed, "
           f"{len(charged)} succeeded PaymentIntents seen at the provider")
