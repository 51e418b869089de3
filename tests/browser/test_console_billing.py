"""The console's Billing screen in headless Chromium against the whole system (SQLite) and the localstripe it
starts: cards added by localstripe's test ids (one refused beside the field), credit bought (the credit an
amount buys shown as it is typed, the balance and the transactions after), a declined card (its decline code,
nothing added), the transactions filtered and read a page at a time; and auto top-up switched on from the page
(the API's refusals beside the fields), topping the balance up at once since it is below the threshold."""
import uuid
from decimal import Decimal

import pytest
from selenium.webdriver.common.by import By

from tests.browser.helpers import UNLABELLED_CONTROLS, owner_of
from tests.e2e.helpers import audit_entries, ok, path, wait_for
from tests.e2e.test_billing import balance, transactions

pytestmark = pytest.mark.parametrize("system", ["sqlite"], indirect=True)


def owner_of_a_studio(system):
    return owner_of(system, "rosa", "Kestrel Studio")


def test_buy_credit_with_a_card_and_see_a_declined_one_refused(system, console):
    rosa, org = owner_of_a_studio(system)
    console.sign_in(rosa)
    console.go("Billing")
    console.text_appears("No card yet", css="main .empty")
    assert console.driver.execute_script(UNLABELLED_CONTROLS) == []

    # A card refused by the provider is refused beside the field; two that attach are listed, the first the default.
    console.fill("provider_payment_method_id", "pm_card_visa_chargeDeclined")
    console.click("Add card")
    assert "declined" in console.error_beside("provider_payment_method_id").lower()
    console.fill("provider_payment_method_id", "pm_card_visa")
    console.click("Add card")
    assert "Default" in console.row_of("Visa •••• 4242").text
    console.fill("provider_payment_method_id", "pm_card_chargeCustomerFail")
    console.click("Add card")
    assert "Default" not in console.row_of("Visa •••• 0341").text
    assert [m["last4"] for m in ok(rosa.get(path(org, "/payment-methods")))["items"]] == ["4242", "0341"]

    # The credit an amount buys, as it is typed; too little is refused beside the amount.
    amount = console.fill("amount_usd", "25")
    assert console.find("main .buys").text == "Buys 2,500 credits."
    amount.clear()
    amount.send_keys("4.50")
    console.click("Buy credit")
    # The API's words with the field called as the screen labels it (ui.js describeError).
    assert console.error_beside("amount_usd") == "Amount (USD) must be from 5.00 to 10000.00."
    assert transactions(rosa, org) == []
    console.fill("amount_usd", "25")
    console.click("Buy credit")
    outcome = console.text_appears("added to the balance", css="main .purchase-outcome")
    assert outcome == "Paid 25.00 USD with Visa •••• 4242: 2,500 credits added to the balance."
    assert balance(rosa, org) == Decimal("2500")
    console.text_appears("2,500 credits", css="main .facts")
    row = console.row_of("Purchase")
    assert "Succeeded" in row.text and "25.00" in row.text and "2,500" in row.text and "Rosa" in row.text

    # The card that fails every charge: declined with its code, nothing added, listed as failed.
    console.fill("amount_usd", "10")
    console.choose("payment_method_id", "Visa •••• 0341", within=console.find("section[aria-labelledby='buy-heading']"))
    console.click("Buy credit")
    declined = console.text_appears("Decline code", css="main .purchase-outcome")
    assert "card_declined" in declined and "No credit was added." in declined
    assert balance(rosa, org) == Decimal("2500")
    console.text_appears("Failed", css="main section[aria-labelledby='transactions-heading'] tbody")
    console.shot("billing", docs=True)

    # Filters, then a page at a time: 21 more purchases through the API make two pages of 20.
    console.choose("status", "Failed")
    console.wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "section[aria-labelledby='transactions-heading'] "
                                                                      "tbody tr")) == 1, "only the failed purchase")
    assert "Visa •••• 0341" in console.row_of("Failed").text
    for _ in range(21):
        ok(rosa.post(path(org, "/purchases"), json={"amount_usd": "5.00"},
                     headers={"Idempotency-Key": uuid.uuid4().hex}), 201)
    console.choose("status", "Succeeded")
    rows = "section[aria-labelledby='transactions-heading'] tbody tr"
    console.wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, rows)) == 20, "the first page")
    console.click("Load more")
    console.wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, rows)) == 22, "the second page")
    assert not console.find("main button.more").is_displayed()
    assert all("Succeeded" in row.text for row in console.driver.find_elements(By.CSS_SELECTOR, rows))


def test_switch_auto_top_up_on_and_see_it_top_up_at_once(system, console):
    rosa, org = owner_of_a_studio(system)
    ok(rosa.post(path(org, "/payment-methods"), json={"provider_payment_method_id": "pm_card_visa"}), 201)
    console.sign_in(rosa)
    console.go("Billing")
    section = console.find("section[aria-labelledby='topup-heading']")
    assert "Off: credit is bought only by hand." in section.text

    console.find("input[name='enabled']", section).click()
    console.fill("threshold", "100", section)
    console.fill("target", "50", section)
    console.click("Save auto top-up", within=section)
    assert console.error_beside("target", section) == "Target (credits) must be above threshold."
    console.fill("target", "1000", section)
    console.fill("monthly_cap_usd", "1", section)
    console.click("Save auto top-up", within=section)
    assert console.error_beside("monthly_cap_usd", section) == "Monthly cap (USD) must be from 5.00 to 1000000.00."
    assert ok(rosa.get(path(org, "/auto-topup")))["enabled"] is False      # refused: nothing saved

    # Saved with a cap: the balance (0) is below the threshold, so a top-up to the target ran before the answer.
    console.fill("monthly_cap_usd", "50", section)
    console.click("Save auto top-up", within=section)
    console.text_appears("On: when a spend takes the balance to 100 credits or below", css=".settings-summary",
                         within=section)
    assert "at most 50.00 USD a month" in section.text
    settings = ok(rosa.get(path(org, "/auto-topup")))
    assert (settings["enabled"], settings["threshold"], settings["target"], settings["monthly_cap_usd"]) == \
        (True, "100.0000", "1000.0000", "50.00")
    assert balance(rosa, org) == Decimal("1000")
    [topup] = transactions(rosa, org)
    assert (topup["type"], topup["status"], topup["amount_usd"], topup["created_by"]) == \
        ("auto_topup", "success", "10.00", "system")
    row = console.row_of("Auto top-up")
    assert "Succeeded" in row.text and "10.00" in row.text and "1,000" in row.text
    console.text_appears("1,000 credits", css="main .facts")
    wait_for(lambda: [e for e in audit_entries(rosa, org) if e["type"] == "auto_topup.updated"] or None,
             message="the settings' audit entry")
    console.shot("billing-auto-topup", docs=True)

    # The page opened again shows the settings as saved.
    console.go("Organizations")
    console.go("Billing")
    section = console.find("section[aria-labelledby='topup-heading']")
    assert console.find("input[name='enabled']", section).is_selected()
    assert console.find("input[name='target']", section).get_attribute("value") == "1000"
