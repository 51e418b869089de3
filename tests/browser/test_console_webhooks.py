"""The console's Webhooks screen in headless Chromium against the whole system (SQLite) and a receiver the
test runs on loopback: an endpoint added (no URL and no event refused beside their fields), its signing
secret shown once and verifying what arrives, the event type picker, a test message and a real event in the
delivery log with their status codes, a failed delivery retried by hand, the secret rotated, the endpoint
disabled and deleted after asking."""
import pytest
from selenium.webdriver.common.by import By

from devtools.webhook_receiver import Receiver
from tests.browser.helpers import UNLABELLED_CONTROLS, owner_of
from tests.e2e.helpers import ok, path, wait_for

pytestmark = pytest.mark.parametrize("system", ["sqlite"], indirect=True)


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


def attempt_codes(console):
    """The status codes the delivery log shows, after a Refresh."""
    console.click("Refresh", within=console.find(".delivery-log"))
    console.idle()
    return [badge.text for badge in console.driver.find_elements(By.CSS_SELECTOR, ".delivery-log .attempts .badge")]


def test_add_an_endpoint_read_its_delivery_log_retry_rotate_and_delete(system, console, receiver):
    dina, org = owner_of(system, "dina", "Sehat Clinic")
    console.sign_in(dina)
    console.go("Webhooks")
    console.text_appears("No endpoints yet", css="main .empty")

    # Add: refusals beside their fields, then the picker's choice.
    console.click("Add Endpoint")
    dialog = console.dialog()
    assert console.driver.execute_script(UNLABELLED_CONTROLS) == []
    console.click("Add Endpoint", within=dialog)
    assert "https URL" in console.error_beside("url", dialog)
    console.fill("url", receiver.url, dialog)
    console.click("Add Endpoint", within=dialog)
    assert console.error_beside("event_types", dialog).startswith("Events to send must list event types")
    assert console.find(".event-types", dialog).is_displayed()        # types one by one
    console.find("input[name='all_events']", dialog).click()          # all events: no list to choose from
    assert not console.find(".event-types", dialog).is_displayed()
    console.find("input[name='all_events']", dialog).click()
    for event_type in ("agent.created", "organization.renamed"):
        console.find(f"input[name='event_types'][value='{event_type}']", dialog).click()
    console.fill("description", "CRM sync", dialog)
    console.click("Add Endpoint", within=dialog)
    console.no_dialog()

    # The secret, this once; it verifies what arrives.
    panel = console.find(".secret-panel")
    assert "It will not be shown again" in panel.text
    secret = console.find("input[name='secret']", panel).get_attribute("value")
    assert secret.startswith("whsec_")
    row = console.row_of("CRM sync")
    assert "agent.created" in row.text and "organization.renamed" in row.text and "Enabled" in row.text
    console.click("Done", within=panel)
    assert secret not in console.driver.page_source

    # A test message and a real event, in the delivery log with their status codes.
    console.click("Send test", within=console.row_of("CRM sync"))
    console.text_appears("webhook.test", css=".delivery-log")
    ok(dina.patch(path(org), json={"name": "Sehat Clinic Jakarta"}))
    wait_for(lambda: len(receiver.received) >= 2, message="two deliveries")
    assert sorted(m["type"] for m in receiver.verified(secret)) == ["organization.renamed", "webhook.test"]
    wait_for(lambda: attempt_codes(console) == ["200", "200"], message="both deliveries' 200 in the log")
    assert "organization.renamed" in console.find(".delivery-log").text
    assert "[object" not in console.find("main").text
    console.shot("webhooks", docs=True)

    # A receiver answering 500 fails the delivery's first try; Retry sends it again now.
    receiver.script = [500] * 3
    ok(dina.post(path(org, "/agents"), json={"name": "Triage"}), 201)
    wait_for(lambda: len(receiver.received) >= 3, message="the agent's first try")
    wait_for(lambda: "500" in attempt_codes(console), message="the 500 in the log")
    receiver.script = []
    console.click("Retry", within=console.row_of("agent.created", within=console.find(".delivery-log")))
    wait_for(lambda: [h["webhook-id"] for h, _ in receiver.received].count(receiver.received[2][0]["webhook-id"]) >= 2,
             message="the retried delivery")

    # Rotating asks first, shows the new secret, and both sign for the overlap.
    console.click("Rotate secret", within=console.row_of("CRM sync"))
    console.click("Rotate secret", within=console.dialog())
    panel = console.find(".secret-panel")
    assert "The previous secret also signs until" in panel.text
    rotated = console.find("input[name='secret']", panel).get_attribute("value")
    assert rotated != secret
    console.click("Done", within=panel)

    # Disable, then delete after asking (Cancel, focused first, keeps it).
    console.click("Disable", within=console.row_of("CRM sync"))
    console.text_appears("Disabled", css="main tbody tr")
    assert ok(dina.get(path(org, "/webhooks")))["items"][0]["enabled"] is False
    console.click("Delete", within=console.row_of("CRM sync"))
    dialog = console.dialog()
    assert console.driver.switch_to.active_element.text == "Cancel"
    console.click("Delete endpoint", within=dialog)
    console.text_appears("No endpoints yet", css="main .empty")
    assert ok(dina.get(path(org, "/webhooks")))["items"] == []
