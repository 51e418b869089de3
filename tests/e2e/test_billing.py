"""Buying credit (SPEC §11), end to end against the running system and localstripe, the fake Stripe server the
system starts (services/billing talks to it through Stripe's own SDK): payment methods, a purchase whose credit
is in the balance when its 201 arrives, a declined card, one charge per Idempotency-Key, the provider's
webhook (signed, delivered twice, or forged), and a pending payment finished by the webhook or by the
reconciliation job."""
import hashlib
import hmac
import json
import time
import uuid
from decimal import Decimal

import requests
import stripe

from common.config import settings
from tests.e2e.helpers import audit_entries, create_organization, error_code, ok, path, types_of, wait_for

VISA, DECLINED_ON_ATTACH = "pm_card_visa", "pm_card_visa_chargeDeclined"
FAILS_EVERY_CHARGE = "pm_card_chargeCustomerFail"
THREE_D_SECURE_CARD = "4000002500003155"


def provider(system):
    """Stripe's SDK pointed at the system's localstripe (what the billing service talks to)."""
    payments = settings(system.env).payments
    return stripe.StripeClient(payments.api_key, base_addresses={"api": payments.api_base})


def transaction_of(intent):
    """The platform's transaction a PaymentIntent was made for (its metadata), or None."""
    return (intent.to_dict().get("metadata") or {}).get("transaction_id")


def add_card(api, org_id, provider_id=VISA):
    return api.post(path(org_id, "/payment-methods"), json={"provider_payment_method_id": provider_id})


def buy(api, org_id, amount_usd, key=None, **body):
    return api.post(path(org_id, "/purchases"), json=dict(amount_usd=amount_usd, **body),
                    headers={"Idempotency-Key": key or uuid.uuid4().hex})


def balance(api, org_id):
    return Decimal(ok(api.get(path(org_id, "/credits")))["balance"])


def transactions(api, org_id, **params):
    return ok(api.get(path(org_id, "/transactions"), params=params))["items"]


def test_a_purchase_puts_its_credit_in_the_balance_before_it_answers(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    card = ok(add_card(owner, org), 201)
    assert (card["brand"], card["last4"], card["is_default"]) == ("visa", "4242", True)
    assert ok(owner.get(path(org, "/payment-methods")))["items"] == [card]
    transaction = ok(buy(owner, org, "25.00"), 201)
    assert (transaction["status"], transaction["type"], transaction["amount_usd"], transaction["credits"]) == \
        ("success", "manual_purchase", "25.00", "2500.0000")
    assert transaction["payment_method"] == {"id": card["id"], "brand": "visa", "last4": "4242"}
    assert balance(owner, org) == Decimal("2500")                        # already, when the 201 arrived
    [listed] = transactions(owner, org)
    assert listed["id"] == transaction["id"] and listed["completed_at"]
    entries = wait_for(lambda: [e for e in audit_entries(owner, org) if e["entity_type"] in ("transaction", "grant")]
                       if len(audit_entries(owner, org)) >= 4 else None, message="the purchase's audit entries")
    assert {"transaction.created", "transaction.succeeded", "credits.granted"} <= set(types_of(entries))


def test_a_declined_card_is_a_402_and_changes_no_balance(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    assert error_code(add_card(owner, org, DECLINED_ON_ATTACH), 422) == "card_declined"
    ok(add_card(owner, org, FAILS_EVERY_CHARGE), 201)
    response = buy(owner, org, "10.00")
    assert error_code(response, 402) == "payment_failed"
    assert response.json()["error"]["details"]["decline_code"] == "card_declined"
    [failed] = transactions(owner, org, status="failed")
    assert failed["failure_code"] == "card_declined" and failed["completed_at"]
    assert balance(owner, org) == 0


def payment_intents(system):
    return sum(1 for _ in provider(system).v1.payment_intents.list(params={"limit": 100}).auto_paging_iter())


def test_the_same_key_charges_once_and_answers_the_same(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    ok(add_card(owner, org), 201)
    intents_before = payment_intents(system)
    first = buy(owner, org, "5.00", key="buy-once")
    again = buy(owner, org, "5.00", key="buy-once")
    assert ok(first, 201)["id"] == ok(again, 201)["id"] and again.headers.get("Idempotent-Replayed") == "true"
    assert error_code(buy(owner, org, "6.00", key="buy-once"), 409) == "idempotency_key_reused"
    assert error_code(owner.post(path(org, "/purchases"), json={"amount_usd": "5.00"}), 400) == \
        "idempotency_key_required"
    assert payment_intents(system) == intents_before + 1                # one charge at the provider
    assert balance(owner, org) == Decimal("500") and len(transactions(owner, org)) == 1


def test_bad_purchases_are_refused_and_charge_nothing(system):
    owner, member = system.user("owner"), system.user("member")
    org = create_organization(owner)["id"]
    assert error_code(buy(owner, org, "25.00"), 422) == "no_payment_method"
    ok(add_card(owner, org), 201)
    for amount, code in (("4.99", "amount_out_of_range"), ("10000.01", "amount_out_of_range"),
                         ("1.234", "invalid_amount"), ("abc", "invalid_amount")):
        assert error_code(buy(owner, org, amount), 422) == code, amount
    assert error_code(buy(owner, org, "5.00", payment_method_id=str(uuid.uuid4())), 404) == "payment_method_not_found"
    assert error_code(buy(member, org, "5.00"), 404) == "organization_not_found"      # a stranger
    assert transactions(owner, org) == [] and balance(owner, org) == 0


def signed(body, secret, timestamp=None):
    timestamp = timestamp or int(time.time())
    signature = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={timestamp},v1={signature}", "Content-Type": "application/json"}


def test_a_forged_webhook_is_a_400_and_a_repeated_one_changes_nothing(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    ok(add_card(owner, org), 201)
    transaction = ok(buy(owner, org, "5.00"), 201)
    transactions_ = {t["id"] for t in transactions(owner, org)}
    [intent] = [i for i in provider(system).v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
                if transaction_of(i) in transactions_]
    event = json.dumps({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "created": 1,
                        "data": {"object": {"id": intent.id, "object": "payment_intent"}}})
    url = system.url + "/v1/billing/stripe/webhook"
    forged = requests.post(url, data=event, headers=signed(event, "whsec_not_the_secret"), timeout=10)
    assert error_code(forged, 400) == "invalid_signature"
    assert error_code(requests.post(url, data=event, timeout=10), 400) == "invalid_signature"   # no signature
    secret = settings(system.env).payments.webhook_secret
    for _ in range(2):                      # delivered twice: settled once (it was already)
        assert ok(requests.post(url, data=event, headers=signed(event, secret), timeout=10))["received"] is True
    assert balance(owner, org) == Decimal("500") and transactions(owner, org)[0]["id"] == transaction["id"]


def three_d_secure_card(system, api, org):
    method = provider(system).v1.payment_methods.create(params={"type": "card", "card": {
        "number": THREE_D_SECURE_CARD, "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    return ok(add_card(api, org, method.id), 201)


def test_a_payment_awaiting_3d_secure_is_pending_until_the_webhook_finishes_it(system):
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    three_d_secure_card(system, owner, org)
    pending = ok(buy(owner, org, "7.00"), 201)
    assert pending["status"] == "pending" and pending["next_action"]["client_secret"]
    assert balance(owner, org) == 0
    # The customer passes 3-D Secure (localstripe's own route for what Stripe.js does), and its webhook comes.
    intent_id = pending["next_action"]["client_secret"].split("_secret_")[0]
    answer = requests.post(f"{settings(system.env).payments.api_base}/v1/payment_intents/{intent_id}/_authenticate",
                           data={"client_secret": pending["next_action"]["client_secret"], "success": "true"},
                           headers={"Authorization": "Bearer " + settings(system.env).payments.api_key}, timeout=10)
    assert answer.status_code == 200, answer.text
    wait_for(lambda: transactions(owner, org)[0]["status"] == "success", message="the webhook's settling")
    assert balance(owner, org) == Decimal("700")


def test_a_lost_answer_is_finished_by_the_reconciliation_job(system):
    """Billing's answer lost after the charge (the process stopped): the pending transaction is settled by the
    job that asks the provider (every second in the tests), and its credit granted once."""
    owner = system.user("owner")
    org = create_organization(owner)["id"]
    three_d_secure_card(system, owner, org)
    pending = ok(buy(owner, org, "8.00"), 201)
    intent_id = pending["next_action"]["client_secret"].split("_secret_")[0]
    payments = settings(system.env).payments
    # Authenticated at the provider with its webhooks sent nowhere: only the job can learn of it.
    requests.post(f"{payments.api_base}/_config/webhooks/platform",
                  data={"url": "http://127.0.0.1:9/nowhere", "secret": payments.webhook_secret}, timeout=10)
    try:
        requests.post(f"{payments.api_base}/v1/payment_intents/{intent_id}/_authenticate",
                      data={"client_secret": pending["next_action"]["client_secret"], "success": "true"},
                      headers={"Authorization": "Bearer " + payments.api_key}, timeout=10).raise_for_status()
        wait_for(lambda: transactions(owner, org)[0]["status"] == "success", message="the reconciliation")
    finally:
        requests.post(f"{payments.api_base}/_config/webhooks/platform",
                      data={"url": system.url + "/v1/billing/stripe/webhook", "secret": payments.webhook_secret},
                      timeout=10)
    assert balance(owner, org) == Decimal("800")


def test_only_owners_and_billing_buy_and_api_keys_read_transactions(system):
    owner, admin = system.user("owner"), system.user("admin")
    org = create_organization(owner)["id"]
    from tests.e2e.helpers import join
    admin = join(system, owner, org, ["admin"], label="admin")
    assert error_code(add_card(admin, org), 403) == "forbidden"
    assert error_code(buy(admin, org, "5.00"), 403) == "forbidden"
    assert error_code(admin.get(path(org, "/transactions")), 403) == "forbidden"
    key = ok(owner.post(path(org, "/api-keys"), json={"name": "Reader", "scopes": ["usage:read"]}), 201)["key"]
    reader = requests.get(system.url + path(org, "/transactions"), headers={"Authorization": f"Bearer {key}"},
                          timeout=10)
    assert ok(reader)["items"] == []
    writer = requests.post(system.url + path(org, "/purchases"), json={"amount_usd": "5.00"},
                           headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "k"}, timeout=10)
    assert error_code(writer, 403) == "api_key_not_allowed"
