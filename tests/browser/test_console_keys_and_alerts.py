"""The console's API keys and budget alerts screens in headless Chromium against the whole system (SQLite):
a key created in the page shows its secret once, then only its prefix, and is revoked after a confirmation;
alert settings saved from the page (a refused value shown beside its field), then crossings made through
the API (as tests/e2e/test_alerts.py does) listed on the screen, newest first."""
import uuid

import pytest
import requests
from selenium.webdriver.common.by import By

from tests.browser.helpers import PHONE, UNLABELLED_CONTROLS, owner_of
from tests.e2e.helpers import create_agent, error_code, join, ok, path, wait_for

pytestmark = pytest.mark.parametrize("system", ["sqlite"], indirect=True)


def owner_of_a_clinic(system):
    return owner_of(system, "dina", "Sehat Clinic")


def test_create_an_api_key_shown_once_then_revoke_it(system, console):
    dina, org = owner_of_a_clinic(system)
    console.sign_in(dina)
    console.go("API Keys")
    console.text_appears("No API keys yet.", css="main .empty")
    assert console.driver.execute_script(UNLABELLED_CONTROLS) == []

    console.click("Create API Key")
    dialog = console.dialog()
    name = console.find("input[name='name']", dialog)
    assert console.driver.switch_to.active_element == name          # the dialog opens on its first field
    assert console.find(".counter", dialog).text == "0/200 characters"
    assert "Read the audit trail" in console.find("[data-field='scopes']", dialog).text
    assert console.driver.execute_script(UNLABELLED_CONTROLS) == []
    console.click("Create API Key", within=dialog)
    assert console.error_beside("name", dialog) == "A key needs a name."
    console.fill("name", "Agent runtime", dialog)
    assert console.find(".counter", dialog).text == "13/200 characters"
    console.click("Create API Key", within=dialog)                  # no scope: refused beside the scopes
    assert "at least one of usage:write" in console.error_beside("scopes", dialog)
    for scope in ("usage:write", "usage:read"):
        console.find(f"input[name='scopes'][value='{scope}']", dialog).click()
    console.click("Create API Key", within=dialog)
    console.no_dialog()

    # The secret, this once, with the warning; the list has only the key's prefix.
    panel = console.find(".secret-panel")
    assert console.driver.switch_to.active_element == console.find("h2", panel)
    assert "It will not be shown again" in panel.text
    key = console.find("input[name='secret']", panel).get_attribute("value")
    [listed] = ok(dina.get(path(org, "/api-keys")))["items"]
    assert key.startswith(f"opk_{listed['id']}_") and listed["prefix"].endswith("…")
    row = console.row_of("Agent runtime")
    assert listed["prefix"] in row.text and key not in row.text
    assert "Active" in row.text and "usage:write" in row.text and "Dina" in row.text and "Never" in row.text
    console.click("Copy", within=panel)                             # copied, or selected where no clipboard
    console.wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".copy-result").text, "the copy's result")
    console.shot("api-keys", docs=True)

    machine = requests.Session()
    machine.headers["Authorization"] = f"Bearer {key}"
    assert ok(machine.get(system.url + path(org, "/credits"), timeout=30))["balance"]
    console.click("Done", within=panel)
    console.wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".secret-panel"), "the secret to go")
    assert key not in console.driver.page_source
    console.go("Organizations")
    console.go("API Keys")
    assert key not in console.driver.page_source and listed["prefix"] in console.row_of("Agent runtime").text

    # Revoking asks first; Cancel (focused first) keeps the key.
    console.click("Revoke", within=console.row_of("Agent runtime"))
    dialog = console.dialog()
    assert f"Revoke Agent runtime ({listed['prefix']})?" in dialog.text
    console.click("Cancel", within=dialog)
    console.no_dialog()
    assert "Active" in console.row_of("Agent runtime").text
    console.click("Revoke", within=console.row_of("Agent runtime"))
    console.click("Revoke key", within=console.dialog())
    console.text_appears("Agent runtime was revoked.", css="#status")
    row = console.row_of("Agent runtime")
    assert "Revoked" in row.text and not row.find_elements(By.CSS_SELECTOR, "button")
    assert ok(dina.get(path(org, "/api-keys")))["items"][0]["status"] == "revoked"
    wait_for(lambda: machine.get(system.url + path(org, "/credits"), timeout=30).status_code == 401,
             timeout=5, message="the revoked key refused")
    assert error_code(machine.get(system.url + path(org, "/credits"), timeout=30), 401) == "api_key_revoked"

    # At phone width the button fills the main area and the list is stacked rows.
    console.viewport(*PHONE)
    button = console.element_with_text("Create API Key")
    assert button.rect["width"] > console.find("main").rect["width"] * 0.8


def spend(api, org, agent, amount):
    return ok(api.post(path(org, "/usage"), json={"agent_id": agent, "amount": amount},
                       headers={"Idempotency-Key": uuid.uuid4().hex}), 201)


def test_alert_settings_and_the_alerts_raised(system, console):
    # Budi, assigned to an agent, in a group with a monthly limit of 10; the organization holds 30.
    dina, org = owner_of_a_clinic(system)
    agent = create_agent(dina, org, "Helper")["id"]
    budi = join(system, dina, org, ["member"], label="budi")
    ok(dina.put(path(org, f"/agents/{agent}/assignees/{budi.id}")), 201)
    group = ok(dina.post(path(org, "/budget-groups"), json={"name": "Interns", "monthly_limit": "10"}), 201)
    ok(dina.put(path(org, f"/budget-groups/{group['id']}/members/{budi.id}")), 201)
    ok(dina.post(path(org, "/credits/grants"), json={"amount": "30", "type": "paid"}), 201)
    console.sign_in(dina)
    console.go("Budget Alerts")
    console.text_appears("No alerts yet.", css="main .empty")
    assert "Not set up yet" in console.find("main").text
    assert console.driver.execute_script(UNLABELLED_CONTROLS) == []

    settings = console.find("form:has(input[name='member_budget_percents'])")
    console.fill("member_budget_percents", "80, 150", settings)
    console.fill("balance_floor", "20", settings)
    console.click("Save alert settings", within=settings)
    assert "whole number from 1 to 100" in console.error_beside("member_budget_percents", settings)
    assert ok(dina.get(path(org, "/alert-settings")))["updated_at"] is None      # nothing saved
    console.fill("member_budget_percents", "100, 80", settings)
    console.click("Save alert settings", within=settings)
    console.text_appears("Alert settings saved.", css="#status")
    assert console.find("input[name='member_budget_percents']", settings).get_attribute("value") == "80, 100"
    assert console.find("input[name='balance_floor']", settings).get_attribute("value") == "20"
    console.text_appears("Last changed by Dina", css="main .panel")
    saved = ok(dina.get(path(org, "/alert-settings")))
    assert (saved["member_budget_percents"], saved["balance_floor"]) == ([80, 100], "20.0000")

    # Budi crosses 80 % of his limit (30 -> 21.5 stays above the floor), then Dina takes the balance below it.
    spend(budi, org, agent, "8.5")
    spend(dina, org, agent, "2")
    console.click("Refresh")
    member_alert = console.row_of("Budi")
    assert "80 % of the monthly limit" in member_alert.text and "8.5 used of 10 credits" in member_alert.text
    floor_alert = console.row_of("Balance at or below 20 credits")
    assert "Balance 19.5 credits" in floor_alert.text
    rows = console.driver.find_elements(By.CSS_SELECTOR, "main tbody tr")
    assert [r.text for r in rows] == [floor_alert.text, member_alert.text]        # newest first
    assert [a["kind"] for a in ok(dina.get(path(org, "/alerts")))["items"]] == ["balance_floor", "member_budget"]
    console.shot("alerts", docs=True)
