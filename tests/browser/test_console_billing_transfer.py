"""The Billing hand-over in the console (issue 28, product rules §4), two people in turn: Dina (Owner, holds
Billing) offers Billing to Sari from Members; the offer is shown to both; Dina could cancel it; Sari, signed
in, accepts it, and the screen says she now holds Billing."""
import pytest

from tests.browser.helpers import UNLABELLED_CONTROLS, activate, owner_of
from tests.e2e.helpers import join, ok, path

pytestmark = pytest.mark.parametrize("system", ["sqlite"], indirect=True)


def test_dina_offers_billing_and_sari_accepts_it(system, console):
    dina, org = owner_of(system, "dina", "Sehat Clinic")
    sari = join(system, dina, org, ["member"], "sari")
    activate(sari, org)
    console.sign_in(dina)
    console.go("Members")
    section = console.find("section[aria-labelledby='billing-heading']")
    assert "Dina holds Billing" in section.text
    assert console.driver.execute_script(UNLABELLED_CONTROLS) == []
    console.choose("to_user_id", "Sari", within=section)
    console.click("Offer Billing", within=section)
    console.text_appears("Billing offered to Sari. It moves when they accept.", css="#status")
    pending = console.text_appears("offered Billing to Sari", css=".pending-transfer")
    assert "It moves when Sari accepts." in pending
    console.element_with_text("Cancel offer", within=console.find(".pending-transfer"))    # hers to cancel
    console.shot("billing-transfer-offered", docs=True)

    console.click("Sign out")
    console.sign_in(sari)
    console.go("Members")
    console.text_appears("Dina offered Billing to Sari", css=".pending-transfer")
    console.click("Accept Billing", within=console.find(".pending-transfer"))
    console.text_appears("You now hold Billing.", css="#status")
    console.text_appears("Sari holds Billing", css="section[aria-labelledby='billing-heading']")
    roles = {m["user_id"]: m["roles"] for m in ok(dina.get(path(org, "/members")))["items"]}
    assert "billing" in roles[sari.id] and "billing" not in roles[dina.id]
